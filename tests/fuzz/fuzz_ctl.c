/* Fuzz target: what a control client sends, now also from other hosts (vmshiftd
 * --listen): the framing of a connection's input (ctl_framing.c: JSON values one after
 * the other, invalid input skipped to the next line, overlong requests) and the QMP
 * envelope, negotiation and argument checks (ctl_qmp.c), against a table with every kind
 * of argument. The input goes into the connection's buffer as the server's reads would
 * put it, in pieces of up to 64 KiB, then what is complete is served.
 * Input: byte 0 bit 0 set: the client has negotiated (qmp_capabilities) already; bit 1
 * set: pieces of at most 7 bytes. The rest is the byte stream. */
#include "fuzz_common.h"
#include "common/error.h"
#include "ctl/ctl_conn.h"
#include "ctl/ctl_server.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

static int echo(void *ctx, struct json_object *args, struct json_object **ret)
{
    (void)ctx;
    json_object_object_foreach(args, key, val) {
        json_object_object_add(*ret, key, json_object_get(val));
    }
    return 0;
}

static int refuse(void *ctx, struct json_object *args, struct json_object **ret)
{
    (void)ctx, (void)args, (void)ret;
    return vs_fail(EINVAL, "refused");
}

static const struct ctl_command table[] = {
    { "vm-start", echo, { { "name", CTL_ARG_STR, true }, { "mem", CTL_ARG_SIZE, true },
                          { "vcpus", CTL_ARG_INT, false }, { "paused", CTL_ARG_BOOL, false },
                          { "rate", CTL_ARG_NUMBER, false }, { "opts", CTL_ARG_OBJECT, false },
                          { "any", CTL_ARG_ANY, false } }, false, "typed arguments" },
    { "vm-ctl", echo, { { "name", CTL_ARG_STR, true } }, true, "open arguments" },
    { .name = "host-shutdown", .fn = refuse, .help = "fails" },
    { .name = NULL },
};

#define IN_CAP (CTL_MAX_LINE + 1)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet();
    if (size < 1)
        return 0;
    size_t piece = data[0] & 2 ? 7 : 65536, off = 1;
    struct ctl_conn c = { .fd = -1, .negotiated = data[0] & 1, .peer = "fuzz", .where = "fuzz" };
    static char *in;                              /* one buffer for every input */
    if (!in && !(in = malloc(IN_CAP)))
        abort();
    c.in = in;
    while (!c.dead && !c.closing) {
        if (c.in_start > 0) {                     /* room for the rest of a request */
            memmove(c.in, c.in + c.in_start, c.in_len);
            c.in_start = 0;
        }
        size_t n = size - off < piece ? size - off : piece;
        if (n > IN_CAP - c.in_len)
            n = IN_CAP - c.in_len;
        memcpy(c.in + c.in_len, data + off, n);
        c.in_len += n;
        off += n;
        c.eof = off == size;
        bool need_more = false;
        while (!c.dead && !c.closing && !need_more) {
            struct json_object *v = ctl_conn_next_value(&c, &need_more);
            if (v)
                ctl_qmp_handle(table, NULL, &c, v);
            c.out_off = c.out_len = 0;            /* the replies went out */
        }
        if (c.eof || (n == 0 && need_more))
            break;
    }
    free(c.out);
    return 0;
}
