/* Integration: trust. Migrations over TLS (pre-shared key, certificates with names, several
 * streams) complete with the digests checked; --insecure still works. A peer that fails
 * authentication (plain against TLS either way, another key, a certificate from another
 * CA, expired or issued to another name) is refused before HELLO, and both sides say who
 * failed which check; the source's VM runs on. The receiver drops silent and trickling
 * peers within its handshake timeout and keeps waiting, up to --max-refused of them;
 * it refuses more vCPUs than --max-vcpus, and more RAM than it has free; no command
 * migrates without a security choice. */
#include "harness.h"

#include <arpa/inet.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct json_object *sub(struct json_object *o, const char *key)
{
    struct json_object *v = NULL;
    json_object_object_get_ex(o, key, &v);
    return v;
}

static const char *file_text(const char *path)
{
    static char buf[32768];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
    return buf;
}

static void expect_text(const char *what, const char *text, const char *a, const char *b)
{
    if (!strstr(text, a) || (b && !strstr(text, b)))
        fail_msg("%s does not mention '%s'%s%s:\n%s", what, a, b ? " and " : "", b ? b : "",
                 text);
}

/* Wait up to 10 s for both texts to be in the file. */
static void wait_text(const char *what, const char *path, const char *a, const char *b)
{
    for (int i = 0; i < 200; i++) {
        const char *text = file_text(path);
        if (strstr(text, a) && (!b || strstr(text, b)))
            return;
        usleep(50000);
    }
    expect_text(what, file_text(path), a, b);
}

static void start_source(struct vm_proc *src, const char *vcpus)
{
    vm_proc_start(src, ARGS("--mem", "32M", "--vcpus", vcpus, "--workload", "verify"));
    json_object_put(wait_guest_at_least(src, "passes", 1, 60));
}

static struct json_object *migrate_to(struct vm_proc *src, struct vm_proc *dst,
                                      struct json_object *args)
{
    char to[64];
    snprintf(to, sizeof(to), "127.0.0.1:%d", dst->port);
    return vm_migrate(src, to, args, 120);
}

/* The migration completed, both sides agree on the digest and the cipher, and the guest
 * finds every page intact at the destination. */
static void expect_moved(struct vm_proc *dst, struct json_object *r, const char *mode)
{
    print_migration(mode, r);
    if (strcmp(json_str(r, "status"), "completed"))
        fail_msg("migration %s: %s", json_str(r, "status"), json_str(r, "error"));
    struct json_object *sec = sub(r, "security");
    assert_string_equal(json_str(sec, "mode"), mode);
    if (strcmp(mode, "insecure"))
        assert_memory_equal(json_str(sec, "cipher"), "TLS_", 4);
    else
        assert_string_equal(json_str(sec, "cipher"), "");
    vm_proc_wait_ctl(dst, 30);
    struct json_object *st = vm_cmd(dst, "status", NULL), *in = sub(st, "incoming");
    assert_string_equal(json_str(in, "ram-digest"), json_str(r, "ram-digest"));
    assert_string_equal(json_str(sub(in, "security"), "mode"), mode);
    assert_string_equal(json_str(sub(in, "security"), "cipher"), json_str(sec, "cipher"));
    uint64_t passes = guest_u64(st, "passes");
    json_object_put(st);
    st = wait_guest_at_least(dst, "passes", passes + 1, 60);
    assert_int_equal(guest_u64(st, "errors"), 0);
    json_object_put(st);
}

/* The source refused: its error says why, its VM runs on. */
static void expect_refused(struct vm_proc *src, struct json_object *r, const char *a,
                           const char *b)
{
    assert_string_equal(json_str(r, "status"), "failed");
    expect_text("the source's error", json_str(r, "error"), a, b);
    struct json_object *st = vm_cmd(src, "status", NULL);
    assert_string_equal(json_str(st, "state"), "running");
    json_object_put(st);
}

static struct json_object *fields(const char *k1, const char *v1, const char *k2,
                                  const char *v2, const char *k3, const char *v3)
{
    struct json_object *a = json_object_new_object();
    const char *k[] = { k1, k2, k3 }, *v[] = { v1, v2, v3 };
    for (int i = 0; i < 3; i++)
        if (k[i])
            json_object_object_add(a, k[i], v[i] ? json_object_new_string(v[i])
                                                 : json_object_new_boolean(1));
    return a;
}

static struct json_object *with_streams(struct json_object *a, int streams)
{
    json_object_object_add(a, "streams", json_object_new_int(streams));
    return a;
}

static void psk_with_four_streams(void **state)
{
    (void)state;
    struct vm_proc src, dst;
    start_source(&src, "2");
    vm_receiver_start(&dst, "127.0.0.1", NULL, ARGS("--tls-psk", test_cred("psk")));
    struct json_object *a = with_streams(fields("tls_psk", test_cred("psk"), 0, 0, 0, 0), 4);
    struct json_object *r = migrate_to(&src, &dst, a);
    expect_moved(&dst, r, "tls-psk");
    assert_int_equal((int)json_num(sub(r, "streams"), "count"), 4);
    json_object_put(a);
    json_object_put(r);
    vm_proc_stop(&src);
    vm_proc_stop(&dst);
}

static void certificates_with_names_and_three_streams(void **state)
{
    (void)state;
    struct vm_proc src, dst;
    start_source(&src, "1");
    vm_receiver_start(&dst, "127.0.0.1", NULL,
                      ARGS("--tls-cert", test_cred("dest.pem"), "--tls-key", test_cred("dest.key"),
                           "--tls-ca", test_cred("ca.pem"), "--tls-name", "vmshift-source"));
    struct json_object *a = with_streams(fields("tls_cert", test_cred("source.pem"), "tls_key",
                                                test_cred("source.key"), "tls_ca",
                                                test_cred("ca.pem")), 3);
    json_object_object_add(a, "tls_name", json_object_new_string("127.0.0.1"));
    struct json_object *r = migrate_to(&src, &dst, a);
    expect_moved(&dst, r, "tls-cert");
    json_object_put(a);
    json_object_put(r);
    vm_proc_stop(&src);
    vm_proc_stop(&dst);
}

static void insecure_still_works(void **state)
{
    (void)state;
    struct vm_proc src, dst;
    start_source(&src, "1");
    vm_receiver_start(&dst, "127.0.0.1", NULL, ARGS("--insecure"));
    struct json_object *a = with_streams(fields("insecure", NULL, 0, 0, 0, 0), 2);
    struct json_object *r = migrate_to(&src, &dst, a);
    expect_moved(&dst, r, "insecure");
    json_object_put(a);
    json_object_put(r);
    vm_proc_stop(&src);
    vm_proc_stop(&dst);
}

/* A plain source is refused by a TLS receiver, which keeps waiting: the right source then
 * migrates. */
static void plain_source_refused_then_tls_source_accepted(void **state)
{
    (void)state;
    struct vm_proc src, dst;
    start_source(&src, "1");
    vm_receiver_start(&dst, "127.0.0.1", NULL, ARGS("--tls-psk", test_cred("psk")));
    struct json_object *a = with_streams(fields("insecure", NULL, 0, 0, 0, 0), 2);
    struct json_object *r = migrate_to(&src, &dst, a);
    expect_refused(&src, r, "without TLS", "--insecure");
    wait_text("the receiver's log", dst.stderr_path, "refused a connection",
              "speaks vmshift without TLS");
    json_object_put(a);
    json_object_put(r);
    a = fields("tls_psk", test_cred("psk"), 0, 0, 0, 0);
    r = migrate_to(&src, &dst, a);
    expect_moved(&dst, r, "tls-psk");
    json_object_put(a);
    json_object_put(r);
    vm_proc_stop(&src);
    vm_proc_stop(&dst);
}

/* One refused migration: the receiver (--max-refused 0) exits; both sides' messages. */
static void refusal(const char *const *recv_args, struct json_object *mig, const char *src_a,
                    const char *src_b, const char *dst_a, const char *dst_b)
{
    struct vm_proc src, dst;
    start_source(&src, "1");
    const char *args[16];
    int n = 0;
    for (int i = 0; recv_args[i]; i++)
        args[n++] = recv_args[i];
    args[n++] = "--max-refused";
    args[n++] = "0";
    args[n] = NULL;
    vm_receiver_start(&dst, "127.0.0.1", NULL, args);
    struct json_object *r = migrate_to(&src, &dst, mig);
    expect_refused(&src, r, src_a, src_b);
    assert_int_not_equal(vm_proc_wait_exit(&dst, 30), 0);
    const char *log = file_text(dst.stderr_path);
    expect_text("the receiver's log", log, dst_a, dst_b);
    expect_text("the receiver's log", log, "nothing runs here", "refused a connection");
    json_object_put(mig);
    json_object_put(r);
    vm_proc_stop(&src);
    vm_proc_stop(&dst);
}

#define DEST_CERTS "--tls-cert", test_cred("dest.pem"), "--tls-key", test_cred("dest.key"), \
                   "--tls-ca", test_cred("ca.pem")

static void tls_source_refused_by_plain_receiver(void **state)
{
    (void)state;
    refusal(ARGS("--insecure"), fields("tls_psk", test_cred("psk"), 0, 0, 0, 0),
            "answered without TLS", "--insecure", "speaks TLS", "--insecure");
}

static void wrong_key_refused(void **state)
{
    (void)state;
    refusal(ARGS("--tls-psk", test_cred("psk")), fields("tls_psk", test_cred("other-psk"), 0, 0, 0, 0),
            "does not hold this source's pre-shared key", "same key file",
            "holds a different pre-shared key", "same key file");
}

static void key_against_certificates_refused(void **state)
{
    (void)state;
    refusal(ARGS(DEST_CERTS), fields("tls_psk", test_cred("psk"), 0, 0, 0, 0),
            "authenticated with a certificate", "--tls-psk",
            "offered a pre-shared key", "uses certificates");
}

static void certificate_from_another_ca_refused(void **state)
{
    (void)state;
    refusal(ARGS(DEST_CERTS), fields("tls_cert", test_cred("other.pem"), "tls_key",
                                     test_cred("other.key"), "tls_ca", test_cred("ca.pem")),
            "rejected this source's certificate", "unknown CA",
            "did not sign", "CN=vmshift-other");
}

static void expired_certificate_refused(void **state)
{
    (void)state;
    refusal(ARGS(DEST_CERTS), fields("tls_cert", test_cred("expired.pem"), "tls_key",
                                     test_cred("expired.key"), "tls_ca", test_cred("ca.pem")),
            "as expired", "new certificate", "CN=vmshift-expired) expired on", NULL);
}

static void certificate_for_another_name_refused(void **state)
{
    (void)state;
    refusal(ARGS(DEST_CERTS, "--tls-name", "vmshift-other"),
            fields("tls_cert", test_cred("source.pem"), "tls_key", test_cred("source.key"),
                   "tls_ca", test_cred("ca.pem")),
            "rejected this source's certificate", "--tls-name",
            "is not issued to 'vmshift-other'", "CN=vmshift-source");
}

struct trickler {
    int port;
    const char *bytes;
    size_t len;
    int gap_ms;
};

/* Connect and send bytes one at a time, gap_ms apart, until done or refused; with no
 * bytes, stay silent for gap_ms. */
static void *trickle(void *arg)
{
    struct trickler *t = arg;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)t->port) };
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 && t->len == 0)
        usleep((useconds_t)t->gap_ms * 1000);
    else
        for (size_t i = 0; i < t->len && send(fd, t->bytes + i, 1, MSG_NOSIGNAL) == 1; i++)
            usleep((useconds_t)t->gap_ms * 1000);
    close(fd);
    return NULL;
}

static void count_lines(const char *log, const char *needle, int want)
{
    int n = 0;
    for (const char *p = log; (p = strstr(p, needle)); p++)
        n++;
    if (n != want)
        fail_msg("the receiver's log has %d lines with '%s', expected %d:\n%s", n, needle,
                 want, log);
}

/* A silent connection and one that trickles a TLS hello are dropped after the handshake
 * timeout; the receiver then takes a real migration. */
static void silent_and_trickling_peers_dropped(void **state)
{
    (void)state;
    struct vm_proc src, dst;
    start_source(&src, "1");
    vm_receiver_start(&dst, "127.0.0.1", NULL,
                      ARGS("--tls-psk", test_cred("psk"), "--handshake-timeout", "1"));
    static const char hello[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 a TLS hello, slowly";
    struct trickler silent = { dst.port, "", 0, 3000 }, slow = { dst.port, hello, sizeof(hello), 150 };
    pthread_t t1, t2;
    double t0 = now_s();
    assert_int_equal(pthread_create(&t1, NULL, trickle, &silent), 0);
    usleep(100000);
    assert_int_equal(pthread_create(&t2, NULL, trickle, &slow), 0);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    const char *log = file_text(dst.stderr_path);
    count_lines(log, "did not complete the TLS handshake within 1.0 s", 2);
    print_message("two peers dropped in %.1f s\n", now_s() - t0);
    struct json_object *r = migrate_to(&src, &dst, NULL);
    expect_moved(&dst, r, "tls-psk");
    json_object_put(r);
    vm_proc_stop(&src);
    vm_proc_stop(&dst);
}

/* Without TLS the first record has the same deadline; past --max-refused the receiver
 * gives up. */
static void plain_receiver_drops_trickling_hello_and_bounds_refusals(void **state)
{
    (void)state;
    struct vm_proc dst;
    vm_receiver_start(&dst, "127.0.0.1", NULL,
                      ARGS("--insecure", "--handshake-timeout", "0.5", "--max-refused", "1"));
    static const char vsr1[] = "VSR1\x01\x00\x00\x00 a header, slowly";
    struct trickler slow = { dst.port, vsr1, sizeof(vsr1), 100 };
    double t0 = now_s();
    for (int i = 0; i < 2; i++)
        trickle(&slow);
    assert_int_not_equal(vm_proc_wait_exit(&dst, 30), 0);
    const char *log = file_text(dst.stderr_path);
    count_lines(log, "did not complete its HELLO in time", 3);   /* 2 warnings + the last */
    expect_text("the receiver's log", log, "gave up after refusing 2 connection(s)",
                "--max-refused 1");
    assert_true(now_s() - t0 < 10);
    vm_proc_stop(&dst);
}

static void too_many_vcpus_refused(void **state)
{
    (void)state;
    struct vm_proc src, dst;
    start_source(&src, "2");
    vm_receiver_start(&dst, "127.0.0.1", NULL, ARGS("--max-vcpus", "1"));
    struct json_object *r = migrate_to(&src, &dst, NULL);
    expect_refused(&src, r, "refused the VM", "--max-vcpus 1");
    json_object_put(r);
    vm_proc_stop(&src);
    vm_proc_stop(&dst);
}

/* A (fake, plain) source that asks for 1 TiB of RAM is refused before anything is made. */
static void more_ram_than_free_refused(void **state)
{
    (void)state;
    struct vm_proc dst;
    vm_receiver_start(&dst, "127.0.0.1", NULL, ARGS("--insecure"));
    struct fake_source f;
    struct vs_wire_hello h = fake_hello(1ULL << 40);
    fake_source_hello(&f, dst.port, &h, sizeof(h));
    assert_int_equal(f.reply.accepted, 0);
    expect_text("the refusal", f.reply.reason, "its RAM (1.0 TiB)", "more than this host has free");
    assert_int_not_equal(vm_proc_wait_exit(&dst, 30), 0);
    fake_source_close(&f);
    vm_proc_stop(&dst);
}

static void security_must_be_chosen(void **state)
{
    (void)state;
    char err[4096];
    int rc = run_vmshift(ARGS("receive", "--listen", "127.0.0.1:0"), err, sizeof(err), 30);
    assert_int_equal(rc, 2);
    expect_text("receive's error", err, "--tls-psk FILE", "--insecure");
    rc = run_vmshift(ARGS("migrate", "/nonexistent.sock", "--to", "127.0.0.1:9"), err,
                     sizeof(err), 30);
    assert_int_equal(rc, 2);
    expect_text("migrate's error", err, "--tls-cert FILE --tls-key FILE --tls-ca FILE",
                "--insecure");
    rc = run_vmshift(ARGS("receive", "--listen", "127.0.0.1:0", "--tls-psk", "/nonexistent"),
                     err, sizeof(err), 30);
    assert_int_equal(rc, 1);   /* a file that cannot be read: a runtime failure */
    expect_text("receive's error", err, "--tls-psk /nonexistent", "openssl rand -hex 32");
    struct vm_proc src;
    start_source(&src, "1");
    struct json_object *a = json_object_new_object();
    json_object_object_add(a, "to", json_object_new_string("127.0.0.1:9"));
    struct json_object *reply = vm_cmd_any(&src, "migrate", a);
    assert_false(json_object_get_boolean(sub(reply, "ok")));
    expect_text("the migrate command's error", json_str(reply, "error"), "x-tls-psk FILE",
                "x-insecure true");
    json_object_put(reply);
    json_object_put(a);
    vm_proc_stop(&src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(psk_with_four_streams),
        cmocka_unit_test(certificates_with_names_and_three_streams),
        cmocka_unit_test(insecure_still_works),
        cmocka_unit_test(plain_source_refused_then_tls_source_accepted),
        cmocka_unit_test(tls_source_refused_by_plain_receiver),
        cmocka_unit_test(wrong_key_refused),
        cmocka_unit_test(key_against_certificates_refused),
        cmocka_unit_test(certificate_from_another_ca_refused),
        cmocka_unit_test(expired_certificate_refused),
        cmocka_unit_test(certificate_for_another_name_refused),
        cmocka_unit_test(silent_and_trickling_peers_dropped),
        cmocka_unit_test(plain_receiver_drops_trickling_hello_and_bounds_refusals),
        cmocka_unit_test(too_many_vcpus_refused),
        cmocka_unit_test(more_ram_than_free_refused),
        cmocka_unit_test(security_must_be_chosen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
