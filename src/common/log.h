/* Diagnostic log on stderr: "vmshift[pid] +12.345s LEVEL message". */
#ifndef VS_LOG_H
#define VS_LOG_H

enum vs_log_level { VS_LOG_ERROR = 0, VS_LOG_WARN = 1, VS_LOG_INFO = 2, VS_LOG_DEBUG = 3 };

void vs_log_set_level(enum vs_log_level level);
void vs_log(enum vs_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define vs_info(...) vs_log(VS_LOG_INFO, __VA_ARGS__)
#define vs_warn(...) vs_log(VS_LOG_WARN, __VA_ARGS__)
#define vs_debug(...) vs_log(VS_LOG_DEBUG, __VA_ARGS__)

#endif
