/* Integration: version 2.0 and 2.1 sources still migrate to this destination. The stream
 * of a real migration of a flat machine is recorded (VMSHIFT_RECORD_DIR) and replayed to
 * new receivers as a 2.0 and a 2.1 source send it: a 64-byte HELLO of that version (2.1
 * offering post-copy), state blobs in their 2.0 form (tagged machine sections; no LAPIC
 * or TSC_KHZ vCPU sections; digests to match), no GRANT after COMMIT. The destination must commit the old way (RESUMED
 * right after COMMIT, no CLAIM) and run the VM, with the verify workload clean. */
#include "harness.h"
#include "common/error.h"
#include "transport/tcp.h"
#include "wire/reader.h"
#include "wire/writer.h"

#include <dirent.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

/* The recorded stream 0 of the first migration (what the receiver read). */
static uint8_t *read_recording(const char *dir, size_t *len)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    char path[512] = "";
    while ((e = readdir(d)))
        if (strstr(e->d_name, "accept.bin"))
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
    closedir(d);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(*len);
    assert_int_equal(fread(buf, 1, *len, f), *len);
    fclose(f);
    return buf;
}

static void reseal(struct vs_wire_header *h, const uint8_t *payload)
{
    size_t summed = h->length;
    if (h->type == VS_REC_PAGES && (h->flags & VS_WIRE_FLAG_META_SUM)) {
        struct vs_wire_pages pg;   /* the sum covers the page list only */
        memcpy(&pg, payload, sizeof(pg));
        summed = sizeof(pg) + (size_t)pg.count * 8;
    }
    h->payload_sum = h->length ? XXH3_64bits(payload, summed) : 0;
    h->header_sum = 0;
    h->header_sum = XXH32(h, sizeof(*h), 0);
}

/* A buffer being built: the rewritten payload of one record. */
struct out_buf {
    uint8_t data[1u << 20];
    size_t len;
};

static void put(struct out_buf *o, const void *p, size_t n)
{
    assert_true(o->len + n <= sizeof(o->data));
    memcpy(o->data + o->len, p, n);
    o->len += n;
}

static void put_tagged(struct out_buf *o, uint32_t tag, const uint8_t *p, uint32_t n)
{
    static const uint8_t zeros[8];
    uint32_t hdr[2] = { tag, n };
    put(o, hdr, sizeof(hdr));
    put(o, p, n);
    put(o, zeros, ((n + 7) & ~7u) - n);
}

/* A vCPU blob as a 2.0-2.2 source sends it: without the 2.3 sections LAPIC (12) and
 * TSC_KHZ (13). */
static void vcpu_blob_as_v20(const uint8_t *blob, size_t len, struct out_buf *o)
{
    for (size_t off = 0; off + 8 <= len;) {
        uint32_t tag, n;
        memcpy(&tag, blob + off, 4);
        memcpy(&n, blob + off + 4, 4);
        if (tag != 12 && tag != 13)
            put_tagged(o, tag, blob + off + 8, n);
        off += 8 + ((n + 7) & ~(size_t)7);
    }
}

/* A 2.3 machine blob (device-state sections of a flat machine) as a 2.0-2.2 source sends
 * it: tagged sections CLOCK (32), PVPORT (33), SERIAL (34) of the same bytes. */
static void machine_blob_as_v20(const uint8_t *blob, size_t len, struct out_buf *o)
{
    /* v1_len: the section's version-1 fields (a 2.3 serial is version 2, whose first 16
     * bytes are version 1's; 0 = the whole section). */
    static const struct { const char *name; uint32_t tag, v1_len; } map[] = {
        { "kvmclock", 32, 0 }, { "pvport", 33, 0 }, { "serial", 34, 16 },
    };
    unsigned found = 0;
    for (size_t off = 0; off + 40 <= len;) {
        uint32_t n;
        memcpy(&n, blob + off + 32, 4);
        for (unsigned i = 0; i < 3; i++)
            if (strcmp((const char *)blob + off, map[i].name) == 0) {
                put_tagged(o, map[i].tag, blob + off + 40,
                           map[i].v1_len && map[i].v1_len < n ? map[i].v1_len : n);
                found++;
            }
        off += 40 + ((n + 7) & ~(size_t)7);
    }
    assert_int_equal(found, 3);   /* a flat machine has exactly these */
}

/* Rewrite one record's payload as a 2.0 source would have sent it; the digests follow
 * the rewritten state blobs. */
static void rewrite_as_v20(struct vs_wire_header *h, uint8_t **p, struct out_buf *o,
                           XXH3_state_t *vcpu_hash, uint64_t *machine_hash)
{
    o->len = 0;
    if (h->type == VS_REC_VCPU_STATE) {
        put(o, *p, sizeof(struct vs_wire_vcpu_state));
        vcpu_blob_as_v20(*p + sizeof(struct vs_wire_vcpu_state),
                         h->length - sizeof(struct vs_wire_vcpu_state), o);
        XXH3_64bits_update(vcpu_hash, o->data + sizeof(struct vs_wire_vcpu_state),
                           o->len - sizeof(struct vs_wire_vcpu_state));
    } else if (h->type == VS_REC_MACHINE_STATE) {
        machine_blob_as_v20(*p, h->length, o);
        *machine_hash = XXH3_64bits(o->data, o->len);
    } else if (h->type == VS_REC_DIGEST) {
        struct vs_wire_digest dg;
        memcpy(&dg, *p, sizeof(dg));
        dg.vcpu_xxh3 = XXH3_64bits_digest(vcpu_hash);
        dg.machine_xxh3 = *machine_hash;
        put(o, &dg, sizeof(dg));
    } else {
        return;
    }
    h->length = (uint32_t)o->len;
    *p = o->data;
}

/* Replay the recorded stream 0 up to COMMIT to a new receiver as a 2.<minor> source would
 * send it (64-byte HELLO; a 2.0 source offers no feature, a 2.1 source offers post-copy),
 * resealed; the destination must answer RESUMED right after COMMIT, with no CLAIM, and
 * run the VM with the verify workload clean. */
static void replay_as(const uint8_t *recording, size_t len, uint16_t minor)
{
    struct vm_proc dst;
    char to[64];
    vm_receiver_start(&dst, "127.0.0.1", NULL, NULL);
    snprintf(to, sizeof(to), "127.0.0.1:%d", dst.port);
    uint8_t *stream = malloc(len);
    assert_non_null(stream);
    memcpy(stream, recording, len);
    struct vs_channel *ch;
    assert_int_equal(vs_tcp_connect(to, 5000, &ch), 0);
    uint64_t seq = 0, machine_hash = 0;
    struct out_buf *o = malloc(sizeof(*o));
    XXH3_state_t *vcpu_hash = XXH3_createState();
    assert_non_null(o);
    assert_non_null(vcpu_hash);
    XXH3_64bits_reset(vcpu_hash);
    for (size_t off = 0; off + sizeof(struct vs_wire_header) <= len;) {
        struct vs_wire_header h;
        memcpy(&h, stream + off, sizeof(h));
        uint8_t *p = stream + off + sizeof(h);
        size_t next = off + sizeof(h) + h.length;
        if (h.type == VS_REC_HELLO) {
            struct vs_wire_hello hello;
            memcpy(&hello, p, sizeof(hello));
            hello.version_minor = minor;
            hello.features = minor >= 1 ? VS_FEATURE_POSTCOPY : 0;
            memcpy(p, &hello, VS_WIRE_HELLO_OLD_SIZE);
            h.length = VS_WIRE_HELLO_OLD_SIZE;
        }
        rewrite_as_v20(&h, &p, o, vcpu_hash, &machine_hash);
        h.seq = seq++;
        reseal(&h, p);
        assert_int_equal(vs_channel_write(ch, &h, sizeof(h)), 0);
        assert_int_equal(vs_channel_write(ch, p, h.length), 0);
        if (h.type == VS_REC_COMMIT)
            break;
        off = next;
    }
    free(stream);
    free(o);
    XXH3_freeState(vcpu_hash);
    /* HELLO_REPLY, VERIFY_REPLY ok, then RESUMED at once: no CLAIM for a 2.0/2.1 source. */
    struct vs_wire_reader r;
    struct vs_wire_header h;
    struct vs_wire_hello_reply reply;
    struct vs_wire_verdict v;
    struct vs_wire_resumed res;
    vs_wire_reader_init(&r, ch);
    assert_int_equal(vs_wire_read_header(&r, &h), 0);
    assert_int_equal(vs_wire_read_fixed(&r, &h, VS_REC_HELLO_REPLY, &reply, sizeof(reply)), 0);
    assert_int_equal(reply.accepted, 1);
    assert_int_equal(reply.features, minor >= 1 ? VS_FEATURE_POSTCOPY : 0);
    assert_int_equal(vs_wire_read_header(&r, &h), 0);
    if (vs_wire_read_fixed(&r, &h, VS_REC_VERIFY_REPLY, &v, sizeof(v)))
        fail_msg("no VERIFY_REPLY: %s", vs_last_error());
    if (!v.ok)
        fail_msg("the destination's check failed: %s", v.reason);
    assert_int_equal(vs_wire_read_header(&r, &h), 0);
    assert_int_equal(vs_wire_read_fixed(&r, &h, VS_REC_RESUMED, &res, sizeof(res)), 0);
    vs_wire_reader_destroy(&r);
    vs_channel_close(ch);

    vm_proc_wait_ctl(&dst, 20);
    struct json_object *st = vm_cmd(&dst, "status", NULL);
    assert_string_equal(json_str(st, "state"), "running");
    uint64_t passes = guest_u64(st, "passes");
    json_object_put(st);
    st = wait_guest_at_least(&dst, "passes", passes + 2, 60);
    assert_int_equal(guest_u64(st, "errors"), 0);
    json_object_put(st);
    vm_proc_stop(&dst);
}

static void v20_and_v21_sources_commit_the_old_way(void **state)
{
    (void)state;
    /* Plain TCP: the recording is of the record stream itself, and the replay speaks it
     * without TLS, as a byte-level test peer. */
    test_security_use(TEST_SEC_INSECURE);
    struct vm_proc src, first;
    /* A flat machine: what 2.0-2.2 sources run (the replay rewrites its 2.3 state blobs
     * into their 2.0 form). */
    vm_proc_start(&src, ARGS("--mem", "8M", "--vcpus", "2", "--workload", "verify",
                             "--machine", "flat"));
    json_object_put(wait_guest_at_least(&src, "passes", 1, 30));
    char rec[64] = "/tmp/vmshift-rec-XXXXXX", env[128], to[64];
    assert_non_null(mkdtemp(rec));
    snprintf(env, sizeof(env), "VMSHIFT_RECORD_DIR=%s", rec);
    harness_child_env(env);
    vm_receiver_start(&first, "127.0.0.1", NULL, NULL);
    snprintf(to, sizeof(to), "127.0.0.1:%d", first.port);
    struct json_object *a = json_object_new_object();
    json_object_object_add(a, "streams", json_object_new_int(1));
    struct json_object *m = vm_migrate(&src, to, a, 60);
    json_object_put(a);
    assert_string_equal(json_str(m, "status"), "completed");
    json_object_put(m);
    vm_proc_stop(&first);

    size_t len;
    uint8_t *stream = read_recording(rec, &len);
    replay_as(stream, len, 0);
    replay_as(stream, len, 1);
    free(stream);
    vm_proc_stop(&src);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", rec);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(v20_and_v21_sources_commit_the_old_way),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
