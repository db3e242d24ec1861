/* The control socket's file in the file system (see ctl_socket.c). */
#ifndef VS_CTL_SOCKET_H
#define VS_CTL_SOCKET_H

#include <sys/types.h>

/* Check socket_path, replace a stale socket file nobody listens on, create the socket
 * (mode 0600) and listen. On success *fd is the non-blocking listener and dev/ino name
 * the socket file; on failure a negative errno after vs_fail() saying what to do. */
int ctl_socket_listen(const char *socket_path, int *fd, dev_t *dev, ino_t *ino);
/* Remove the socket file at abs_path only if it is still the one (dev, ino) names. */
void ctl_socket_remove_if_ours(const char *abs_path, dev_t dev, ino_t ino);
/* socket_path made absolute against the working directory (malloc'd; NULL when out of
 * memory). */
char *ctl_socket_absolute_path(const char *path);

#endif
