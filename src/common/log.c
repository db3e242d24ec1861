#include "log.h"
#include "clock.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

static enum vs_log_level current_level = VS_LOG_INFO;
static const char *const level_names[] = { "error", "warn", "info", "debug" };

void vs_log_set_level(enum vs_log_level level)
{
    current_level = level;
}

void vs_log(enum vs_log_level level, const char *fmt, ...)
{
    if (level > current_level)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "vmshift[%d] +%.3fs %s: %s\n", (int)getpid(),
            (double)vs_clock_since_start_ns() / 1e9, level_names[level], msg);
}
