/* SIGINT and SIGTERM as a request to stop, for long-running commands (a VM monitor, the
 * host agent, an evacuation, a receiver, a migration client): the handler only notes the
 * signal and makes a pipe readable, and the command's loops look at it. Code that blocks
 * where no loop looks (a read on a socket, an accept) either polls vs_stop_signal_fd()
 * with what it waits for, or registers a stop hook that unblocks it (shuts a socket
 * down). Also ignores SIGPIPE (a peer that went away is an error, not a death). */
#ifndef VS_STOP_SIGNAL_H
#define VS_STOP_SIGNAL_H

void vs_stop_signal_install(void);
/* The stop signal received (SIGINT or SIGTERM), or 0. */
int vs_stop_signal(void);
/* A descriptor that becomes readable (and stays so) once a stop signal arrived, for
 * poll(); -1 before vs_stop_signal_install. Never read it. */
int vs_stop_signal_fd(void);
/* "SIGTERM", "SIGINT" (or "signal N"), for messages. */
const char *vs_stop_signal_name(int sig);
/* The exit status of a command stopped by sig: 128 + sig, as a shell reports it. */
static inline int vs_stop_exit_status(int sig) { return 128 + sig; }

/* A function run once, in a thread of its own, when a stop signal arrives (at once, in
 * the caller's thread, when one already has). It must not block for long and must not
 * add or remove hooks. After vs_stop_hook_remove returns the hook is not running and
 * never will. */
struct vs_stop_hook;
int vs_stop_hook_add(void (*fn)(void *ctx, int sig), void *ctx, struct vs_stop_hook **out);
void vs_stop_hook_remove(struct vs_stop_hook *h);

#endif
