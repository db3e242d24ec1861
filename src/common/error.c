#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static __thread char last_error[512];

static int normalise(int err)
{
    if (err == 0)
        return -EIO;
    return err < 0 ? err : -err;
}

int vs_fail(int err, const char *fmt, ...)
{
    /* Through a copy: the arguments may include vs_last_error() itself. */
    char msg[sizeof(last_error)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    memcpy(last_error, msg, sizeof(msg));
    return normalise(err);
}

int vs_fail_context(int err, const char *fmt, ...)
{
    char prefix[256], old[sizeof(last_error)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof(old));
    /* Bounded so the result always fits: the message is for people to read. */
    if (old[0])
        snprintf(last_error, sizeof(last_error), "%.200s: %.300s", prefix, old);
    else
        snprintf(last_error, sizeof(last_error), "%.200s", prefix);
    return normalise(err);
}

const char *vs_last_error(void)
{
    return last_error;
}

void vs_clear_error(void)
{
    last_error[0] = '\0';
}
