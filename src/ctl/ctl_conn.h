/* One client connection of the control server, shared by ctl_server.c (sockets, buffers,
 * polling) and ctl_qmp.c (the QMP messages). Internal to src/ctl. */
#ifndef VS_CTL_CONN_H
#define VS_CTL_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "ctl/ctl_server.h"

struct json_object;
struct vs_tls_stream;

struct ctl_conn {
    int fd;
    struct vs_tls_stream *tls; /* a TLS session over fd (a TCP listener with TLS), or NULL */
    bool handshaking;    /* TLS: not authenticated yet; no greeting, no requests */
    uint64_t handshake_deadline;
    char peer[80];       /* "198.18.0.3:41234", or "a local client", for messages */
    const char *where;   /* the listener's name: the socket path or HOST:PORT */
    char *in;            /* IN_CAP bytes; pending input is in[in_start .. in_start+in_len) */
    size_t in_start, in_len;
    char *out;           /* queued reply bytes out[out_off .. out_len) */
    size_t out_off, out_len, out_cap;
    uint64_t stall_since; /* when queued output last made no progress (0: nothing queued) */
    bool negotiated;     /* qmp_capabilities done: commands and events */
    bool eof;            /* peer sent EOF: no more input */
    bool closing;        /* serve no more requests; close once output is flushed */
    bool dead;           /* close now */
};

/* Queue one message (a line ending in "\r\n"); `msg` is not consumed. */
void ctl_conn_queue(struct ctl_conn *c, struct json_object *msg);

/* ctl_framing.c: parse one complete JSON value at the start of the pending input.
 * Returns it (consumed from the buffer), or NULL when more input is needed (*need_more)
 * or an error was answered. */
struct json_object *ctl_conn_next_value(struct ctl_conn *c, bool *need_more);

/* ctl_qmp.c */
void ctl_qmp_greet(struct ctl_conn *c);
/* {"error": {"class": cls, "desc": desc}} with `id` (may be NULL) echoed. */
void ctl_qmp_error(struct ctl_conn *c, const char *cls, const char *desc, struct json_object *id);
/* One complete input value (consumed). */
void ctl_qmp_handle(const struct ctl_command *table, void *ctx, struct ctl_conn *c,
                    struct json_object *msg);
/* {"event": name, "data": data, "timestamp": now}; data (may be NULL) is consumed.
 * The caller json_object_put()s the result. */
struct json_object *ctl_qmp_event(const char *name, struct json_object *data);
/* The same, stamped with when it happened (NULL or zero: now). */
struct json_object *ctl_qmp_event_at(const char *name, struct json_object *data,
                                     const struct timespec *when);

#endif
