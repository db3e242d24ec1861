#include "migrate/commit/resolve_wire.h"
#include "common/error.h"
#include "transport/tls.h"

#include <stdio.h>
#include <string.h>

int vs_resolve_read_payload(struct vs_wire_reader *r, const struct vs_wire_header *h,
                            const uint8_t *session, uint32_t *state)
{
    struct vs_wire_resolve rs;
    int rc = vs_wire_read_fixed(r, h, VS_REC_RESOLVE, &rs, sizeof(rs));
    if (!rc)
        rc = vs_wire_check_resolve(&rs);
    if (rc)
        return rc;
    *state = memcmp(rs.session, session, VS_WIRE_SESSION_LEN) ? VS_OUTCOME_UNKNOWN : rs.state;
    return 0;
}

int vs_resolve_read(struct vs_wire_reader *r, const uint8_t *session, uint32_t *state)
{
    struct vs_wire_header h;
    int rc = vs_wire_read_header(r, &h);
    return rc ? rc : vs_resolve_read_payload(r, &h, session, state);
}

int vs_resolve_send(struct vs_wire_writer *w, const uint8_t *session, uint32_t state)
{
    struct vs_wire_resolve rs = { .state = state };
    memcpy(rs.session, session, VS_WIRE_SESSION_LEN);
    return vs_wire_send(w, VS_REC_RESOLVE, &rs, sizeof(rs));
}

int vs_resolve_open(struct vs_channel *ch, int timeout_ms, struct vs_resolve_conn *c)
{
    memset(c, 0, sizeof(*c));
    c->ch = ch;
    vs_wire_reader_init(&c->r, ch);
    int rc = vs_wire_writer_init(&c->w, ch);
    if (!rc)
        rc = vs_channel_set_timeout(ch, timeout_ms);
    if (rc)
        vs_resolve_close(c);
    return rc;
}

int vs_resolve_call(const char *addr, const struct vs_dialer *dialer, int timeout_ms,
                    const uint8_t *session, uint32_t my_state, uint32_t *peer_state,
                    struct vs_resolve_conn *c)
{
    struct vs_channel *ch;
    int rc = vs_dialer_connect(dialer, addr, timeout_ms, &ch);
    if (rc)
        return rc;
    /* Secured like a migration stream: only an authenticated peer's answer counts. */
    struct vs_tls_result res;
    vs_dialer_secure(dialer, &ch, 1, timeout_ms, &res);
    if (res.err) {
        vs_channel_close(ch);
        /* A refusal inside TLS is not "nothing listens": the peer may be alive. */
        return vs_fail(res.err == -ECONNREFUSED ? ECONNRESET : res.err, "%s", res.error);
    }
    if ((rc = vs_resolve_open(ch, timeout_ms, c)))
        return rc;
    if ((rc = vs_resolve_send(&c->w, session, my_state)) ||
        (rc = vs_resolve_read(&c->r, session, peer_state))) {
        vs_resolve_close(c);
        /* A reset after connecting is not a refusal: the peer may be alive. */
        return rc == -ECONNREFUSED ? -ECONNRESET : rc;
    }
    return 0;
}

int vs_resolve_accept(struct vs_channel *ch, int timeout_ms, const uint8_t *session,
                      uint32_t *caller_state, struct vs_resolve_conn *c)
{
    int rc = vs_resolve_open(ch, timeout_ms, c);
    if (!rc && (rc = vs_resolve_read(&c->r, session, caller_state)))
        vs_resolve_close(c);
    return rc;
}

void vs_resolve_close(struct vs_resolve_conn *c)
{
    if (!c->ch)
        return;
    vs_wire_reader_destroy(&c->r);
    vs_wire_writer_destroy(&c->w);
    vs_channel_close(c->ch);
    c->ch = NULL;
}

const char *vs_outcome_name(uint32_t state)
{
    static const char *const names[] = {
        [VS_OUTCOME_SRC_UNDECIDED] = "undecided", [VS_OUTCOME_SRC_COMMITTED] = "committed",
        [VS_OUTCOME_SRC_ABORTED] = "aborted", [VS_OUTCOME_DST_IN_DOUBT] = "in-doubt",
        [VS_OUTCOME_DST_RUNNING] = "running", [VS_OUTCOME_DST_DISCARDED] = "discarded",
        [VS_OUTCOME_UNKNOWN] = "unknown session", [VS_OUTCOME_SRC_GRANTED] = "granted",
    };
    return state >= 1 && state <= VS_OUTCOME_MAX ? names[state] : "invalid";
}

void vs_resolve_endpoint(const char *peer, uint16_t port, char *out, size_t size)
{
    const char *colon = strrchr(peer, ':');
    int host_len = colon ? (int)(colon - peer) : (int)strlen(peer);
    snprintf(out, size, "%.*s:%u", host_len, peer, (unsigned)port);
}
