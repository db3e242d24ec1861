/* SIGINT and SIGTERM as a request to stop, for long-running commands (a VM monitor, the
 * host agent, an evacuation): the handler only notes the signal, and the command's loop
 * looks at it. Also ignores SIGPIPE (a peer that went away is an error, not a death). */
#ifndef VS_STOP_SIGNAL_H
#define VS_STOP_SIGNAL_H

void vs_stop_signal_install(void);
/* The stop signal received (SIGINT or SIGTERM), or 0. */
int vs_stop_signal(void);

#endif
