#include "cli/receive_admission.h"
#include "common/error.h"
#include "common/log.h"
#include "wire/writer.h"

#include <stdio.h>
#include <string.h>

#define BATCH_GAP_MS 20       /* connections this close together are secured together */
#define REFUSAL_LINGER_MS 500 /* time for a refused peer to read why */

/* Tell a peer that spoke the vmshift stream without TLS why it is refused: an ABORT as
 * its first record, which it reads where it expects the HELLO_REPLY. */
static void tell_plain_peer(struct vs_channel *ch, const char *why)
{
    struct vs_wire_writer w;
    char reason[VS_WIRE_MAX_REASON];
    snprintf(reason, sizeof(reason), "%s", why);
    if (vs_wire_writer_init(&w, ch) == 0) {
        vs_channel_set_timeout(ch, REFUSAL_LINGER_MS);
        vs_wire_send(&w, VS_REC_ABORT, reason, (uint32_t)strlen(reason) + 1);
        vs_wire_writer_destroy(&w);
    }
}

static int accept_batch(struct vs_admission *a, unsigned want, int timeout_ms)
{
    struct vs_channel *batch[VS_ADMISSION_QUEUE];
    struct vs_tls_result res[VS_ADMISSION_QUEUE];
    unsigned n = 0;
    if (want < 1)
        want = 1;
    if (want > VS_ADMISSION_QUEUE)
        want = VS_ADMISSION_QUEUE;
    int rc = vs_tcp_accept(a->listener, timeout_ms, &batch[n]);
    if (rc)
        return rc;
    n++;
    while (n < want && vs_tcp_accept(a->listener, BATCH_GAP_MS, &batch[n]) == 0)
        n++;
    vs_clear_error();
    vs_tls_secure(a->tls, batch, n, a->handshake_timeout_ms, res);
    for (unsigned i = 0; i < n; i++) {
        struct vs_admission_entry *e = &a->queue[(a->head + a->count++) % VS_ADMISSION_QUEUE];
        memset(e, 0, sizeof(*e));
        if (!res[i].err) {
            e->ch = batch[i];
            continue;
        }
        e->err = res[i].err;
        snprintf(e->error, sizeof(e->error), "%s", res[i].error);
        vs_warn("refused a connection: %s", res[i].error);
        if (res[i].plain_peer)
            tell_plain_peer(batch[i], res[i].error);
        vs_channel_linger_close(batch[i], REFUSAL_LINGER_MS);
    }
    return 0;
}

int vs_admission_next(struct vs_admission *a, unsigned want, int timeout_ms,
                      struct vs_channel **out)
{
    *out = NULL;
    if (a->count == 0) {
        int rc = accept_batch(a, want, timeout_ms);
        if (rc)
            return rc;
    }
    struct vs_admission_entry *e = &a->queue[a->head];
    a->head = (a->head + 1) % VS_ADMISSION_QUEUE;
    a->count--;
    if (e->ch) {
        *out = e->ch;
        return 0;
    }
    vs_fail(e->err, "%s", e->error);
    return 1;
}

void vs_admission_drain(struct vs_admission *a)
{
    while (a->count) {
        vs_channel_close(a->queue[a->head].ch);
        a->head = (a->head + 1) % VS_ADMISSION_QUEUE;
        a->count--;
    }
}
