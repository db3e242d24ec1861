/* Integration: a scripted destination drives the source into its late failure paths:
 * a verification mismatch reported at the very end, an ABORT sent mid-way, and an ABORT
 * sent as the switchover's machine state arrives (the source is then computing or sending
 * its DIGEST, and its own send may fail first: the ABORT waiting in the stream still
 * tells it that nothing needs settling). Each way the source rolls back, names the
 * reason, and its VM runs on intact. */
#include "harness.h"
#include "transport/tcp.h"
#include "wire/reader.h"
#include "wire/writer.h"

#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

enum script { SAY_MISMATCH, SAY_ABORT_AFTER_FIRST_PASS, SAY_ABORT_AT_SWITCHOVER };

#define RAM (64ULL << 20)   /* the VM of these tests */

struct fake {
    struct vs_tcp_listener *l;
    enum script script;
    int result;          /* 0 when the script ran to its end */
};

/* Accept one source, accept its VM, read records (discarding pages) and act. */
static void *fake_destination(void *arg)
{
    struct fake *f = arg;
    struct vs_channel *ch;
    f->result = -1;
    if (vs_tcp_accept(f->l, 30000, &ch))
        return NULL;
    struct vs_wire_reader r;
    struct vs_wire_writer w;
    vs_wire_reader_init(&r, ch);
    vs_wire_writer_init(&w, ch);
    uint8_t *buf = malloc(8u << 20), *ram = malloc(RAM);
    static uint64_t gpa[VS_WIRE_MAX_PAGES];
    struct vs_wire_header h;
    struct vs_wire_hello_reply reply = { .accepted = 1 };
    if (vs_wire_read_header(&r, &h) || vs_wire_read_payload(&r, &h, buf, 8u << 20) ||
        vs_wire_send(&w, VS_REC_HELLO_REPLY, &reply, sizeof(reply)))
        goto out;
    for (;;) {
        if (vs_wire_read_header(&r, &h))
            goto out;
        /* pages are read into scratch RAM: this destination keeps nothing */
        if (h.type == VS_REC_PAGES || h.type == VS_REC_ZERO_PAGES) {
            struct vs_wire_pages info;
            if (vs_wire_read_pages(&r, &h, ram, RAM, &info, gpa))
                goto out;
        } else if (h.length > (8u << 20) || vs_wire_read_payload(&r, &h, buf, 8u << 20)) {
            goto out;
        }
        if ((f->script == SAY_ABORT_AFTER_FIRST_PASS && h.type == VS_REC_PASS_END) ||
            (f->script == SAY_ABORT_AT_SWITCHOVER && h.type == VS_REC_MACHINE_STATE)) {
            const char *why = "scripted abort: disk on fire";
            vs_wire_send(&w, VS_REC_ABORT, why, (uint32_t)strlen(why) + 1);
            if (f->script == SAY_ABORT_AT_SWITCHOVER) {
                /* Reset the connection now: the source (stalled after D) fails to send
                 * DIGEST with the ABORT still unread. */
                struct linger lg = { .l_onoff = 1, .l_linger = 0 };
                setsockopt(ch->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
            }
            break;
        }
        if (f->script == SAY_MISMATCH && h.type == VS_REC_DIGEST) {
            struct vs_wire_verdict v = { .ok = 0 };
            snprintf(v.reason, sizeof(v.reason), "scripted mismatch: RAM digest differs");
            vs_wire_send(&w, VS_REC_VERIFY_REPLY, &v, sizeof(v));
            vs_wire_read_header(&r, &h); /* the source's ABORT, or EOF */
            break;
        }
    }
    f->result = 0;
out:
    free(buf);
    free(ram);
    vs_wire_writer_destroy(&w);
    vs_channel_close(ch);
    return NULL;
}

static void run_script(enum script script, const char *expect)
{
    struct vm_proc src;
    if (script == SAY_ABORT_AT_SWITCHOVER)   /* the reset lands before DIGEST goes out */
        harness_child_env("VMSHIFT_FAULT=src.digest_ready:0:stall=300");
    vm_proc_start(&src, ARGS("--mem", "64M", "--vcpus", "2", "--workload", "verify"));
    struct json_object *st = wait_guest_at_least(&src, "passes", 1, 60);
    uint64_t passes = guest_u64(st, "passes");
    json_object_put(st);

    struct fake f = { .script = script };
    assert_int_equal(vs_tcp_listen("127.0.0.1:0", &f.l), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, fake_destination, &f), 0);
    char to[64];
    snprintf(to, sizeof(to), "127.0.0.1:%d", vs_tcp_listener_port(f.l));
    struct json_object *a = json_object_new_object();
    json_object_object_add(a, "max_passes", json_object_new_int(2));
    json_object_object_add(a, "streams", json_object_new_int(1)); /* this fake reads one */
    json_object_object_add(a, "insecure", json_object_new_boolean(1)); /* it speaks plain */
    struct json_object *r = vm_migrate(&src, to, a, 60);
    json_object_put(a);
    pthread_join(t, NULL);
    vs_tcp_listener_close(f.l);
    assert_int_equal(f.result, 0);

    assert_string_equal(json_str(r, "status"), "failed");
    if (!strstr(json_str(r, "error"), expect))
        fail_msg("error does not mention '%s': %s", expect, json_str(r, "error"));
    json_object_put(r);
    st = vm_cmd(&src, "status", NULL);
    assert_string_equal(json_str(st, "state"), "running");
    json_object_put(st);
    st = wait_guest_at_least(&src, "passes", passes + 2, 60);
    assert_int_equal(guest_u64(st, "errors"), 0);
    json_object_put(st);
    vm_proc_stop(&src);
    assert_int_equal(src.exit_status, 0);
}

static void mismatch_at_the_end_rolls_back(void **state)
{
    (void)state;
    run_script(SAY_MISMATCH, "scripted mismatch");
}

static void abort_mid_way_rolls_back(void **state)
{
    (void)state;
    run_script(SAY_ABORT_AFTER_FIRST_PASS, "disk on fire");
}

static void abort_at_switchover_rolls_back(void **state)
{
    (void)state;
    run_script(SAY_ABORT_AT_SWITCHOVER, "disk on fire");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mismatch_at_the_end_rolls_back),
        cmocka_unit_test(abort_mid_way_rolls_back),
        cmocka_unit_test(abort_at_switchover_rolls_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
