/* Error reporting: functions return 0 or a negative errno and leave a one-line,
 * user-facing message (what failed, with which value, what to do) in a thread-local
 * buffer that the caller may print, extend or replace. */
#ifndef VS_ERROR_H
#define VS_ERROR_H

#include <errno.h>

/* Format the message and return -|err| (err may be given as errno or -errno; 0 -> -EIO). */
int vs_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefix the current message: "<prefix>: <old message>". Returns err unchanged. */
int vs_fail_context(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The last message set on this thread ("" if none). */
const char *vs_last_error(void);
void vs_clear_error(void);

#endif
