/* Who may write a shared disk (the migration's promise: never two writers). Seen two ways:
 * a VM's own view of its disk 0 (status "disks": open and writable, and its write count),
 * and the kernel's (a descriptor of the file opened for writing, in /proc/PID/fd and
 * fdinfo). A watcher thread samples the kernel's view of two processes every 2 ms while
 * a migration runs and counts the samples where both had the file open for writing. */
#ifndef VS_TEST_DISK_WRITERS_H
#define VS_TEST_DISK_WRITERS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <json-c/json.h>

/* A sparse file of `bytes`; false if it cannot be made. */
bool disk_file_create(const char *path, uint64_t bytes);
/* Whether process pid has the file at path open for writing (false: none, or gone). */
bool disk_fd_writes(pid_t pid, const char *path);
/* From a status reply: disk 0 is open and writable; *writes (if given) its write count.
 * False for a NULL reply or a VM without disks. */
bool disk_status_writes(struct json_object *status, uint64_t *writes);

struct disk_watch;
/* Sample pids a and b (a first) every 2 ms until stopped. */
struct disk_watch *disk_watch_start(pid_t a, pid_t b, const char *path);
/* Stop; the samples taken, and those where both wrote (*both_at_ms: when the first was,
 * after the start). Frees the watch. */
void disk_watch_stop(struct disk_watch *w, unsigned *samples, unsigned *both, double *both_at_ms);

#endif
