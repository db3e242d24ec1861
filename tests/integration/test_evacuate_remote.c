/* Integration: host agents driven from another host. Three network namespaces on a bridge:
 * host A (198.18.0.1), host B (198.18.0.2) and an operator's host C (198.18.0.3). A
 * vmshiftd in A and in B serves its API with --listen on its address, over TLS 1.3 with
 * its own certificate, checking its clients' certificates against the test CA; it has no
 * migration options but those, so its receivers and the VMs it sends away use them too,
 * and its migrations go to its --listen address. From C, `vmshift evacuate --from
 * 198.18.0.1:7000 --to 198.18.0.2:7000` with the operator's certificate moves a verify VM
 * from A to B: the VM runs on B with its guest finding no bad page, the migration's
 * end-to-end digest agrees, the migration itself ran over TLS with the hosts'
 * certificates. A vmshiftd with --listen alone (no --ctl) serves a client with a
 * certificate from the CA and refuses one from another CA, an expired one, one without a
 * certificate and a plain TCP client, naming why on both sides. The namespaces are removed
 * on every way out: after the tests, at exit, on SIGINT/SIGTERM/SIGHUP, and (left by a
 * killed run) before the next run. */
#include "host_harness.h"

#include <dirent.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NS_PREFIX "vsr-"

static struct {
    char a[32], b[32], c[32];
    bool made;
} lan;

static char client_opts[512];   /* --tls-cert client.pem --tls-key ... --tls-ca ... */

static void lan_destroy(void)
{
    if (!lan.made)
        return;
    lan.made = false;
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null; ip netns del %s 2>/dev/null; "
             "ip netns del %s 2>/dev/null", lan.a, lan.b, lan.c);
    if (system(cmd) != 0)
        print_message("could not remove the namespaces %s %s %s\n", lan.a, lan.b, lan.c);
}

static void on_signal(int sig)
{
    lan_destroy();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* Namespaces a killed run of this test left behind (its pid is gone). */
static void sweep_stale(void)
{
    DIR *d = opendir("/run/netns");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char side;
        int pid;
        if (sscanf(e->d_name, NS_PREFIX "%c-%d", &side, &pid) != 2 || kill(pid, 0) == 0)
            continue;
        char cmd[320];
        snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null", e->d_name);
        if (system(cmd) != 0)
            print_message("could not remove the stale namespace %s\n", e->d_name);
    }
    if (d)
        closedir(d);
}

/* A and B each joined by a veth pair to a bridge in C, which has an address on it. */
static int lan_create(void **state)
{
    (void)state;
    sweep_stale();
    int id = (int)getpid();
    snprintf(lan.a, sizeof(lan.a), NS_PREFIX "a-%d", id);
    snprintf(lan.b, sizeof(lan.b), NS_PREFIX "b-%d", id);
    snprintf(lan.c, sizeof(lan.c), NS_PREFIX "c-%d", id);
    atexit(lan_destroy);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);
    lan.made = true;
    harness_sh("ip netns add %s && ip netns add %s && ip netns add %s", lan.a, lan.b, lan.c);
    harness_sh("ip -n %s link add br0 type bridge && ip -n %s link set br0 up && "
       "ip -n %s addr add 198.18.0.3/24 dev br0 && ip -n %s link set lo up",
       lan.c, lan.c, lan.c, lan.c);
    const char *hosts[] = { lan.a, lan.b };
    for (int i = 0; i < 2; i++) {
        harness_sh("ip -n %s link add port%d type veth peer name lan0 netns %s && "
           "ip -n %s link set port%d master br0 && ip -n %s link set port%d up",
           lan.c, i, hosts[i], lan.c, i, lan.c, i);
        harness_sh("ip -n %s addr add 198.18.0.%d/24 dev lan0 && ip -n %s link set lan0 up && "
           "ip -n %s link set lo up", hosts[i], i + 1, hosts[i], hosts[i]);
    }
    snprintf(client_opts, sizeof(client_opts), "--tls-cert %s --tls-key %s --tls-ca %s",
             test_cred("client.pem"), test_cred("client.key"), test_cred("ca.pem"));
    return 0;
}

static int lan_remove(void **state)
{
    (void)state;
    lan_destroy();
    return 0;
}

/* `SHELL-WORDS` run in the operator's host C; its exit status, its output into out. */
static int run_in_c(char *out, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int run_in_c(char *out, size_t len, const char *fmt, ...)
{
    char words[1400], cmd[1600], path[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(words, sizeof(words), fmt, ap);
    va_end(ap);
    snprintf(path, sizeof(path), "/tmp/vmshift-remote-%d.out", (int)getpid());
    snprintf(cmd, sizeof(cmd), "ip netns exec %s %s >%s 2>&1 </dev/null", lan.c, words, path);
    int st = system(cmd);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(out, 1, len - 1, f) : 0;
    out[n] = '\0';
    if (f)
        fclose(f);
    unlink(path);
    print_message("C$ %s\n%s", words, out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static const char *const *host_certs(const char *which)
{
    static char cert[2][128], key[2][128];
    static const char *argv[2][7];
    int i = !strcmp(which, "dest");
    snprintf(cert[i], sizeof(cert[i]), "%s.pem", which);
    snprintf(key[i], sizeof(key[i]), "%s.key", which);
    const char *const v[] = { "--tls-cert", test_cred(cert[i]), "--tls-key",
                              test_cred(key[i]), "--tls-ca", test_cred("ca.pem"), NULL };
    memcpy(argv[i], v, sizeof(v));
    return argv[i];
}

static void evacuate_from_another_host(void **state)
{
    (void)state;
    struct host_proc a, b;
    host_proc_start_listening(&a, "A", lan.a, "198.18.0.1:7000", host_certs("source"));
    host_proc_start_listening(&b, "B", lan.b, "198.18.0.2:7000", host_certs("dest"));
    host_vm_start_wait(&a, "web", ARGS("mem=64M", "vcpus=2", "workload=verify",
                                       "fill=random"));
    struct json_object *st = host_vm_wait_guest(&a, "web", "passes", 1, 90);
    assert_int_equal(guest_u64(st, "errors"), 0);
    uint64_t passes = guest_u64(st, "passes");
    json_object_put(st);

    struct evac_run run = { 0 };
    harness_temp_dir(run.dir, sizeof(run.dir));
    snprintf(run.report, sizeof(run.report), "%s/report.json", run.dir);
    snprintf(run.out, sizeof(run.out), "%s/out.log", run.dir);
    const char *args[] = { "evacuate", "--from", "198.18.0.1:7000", "--to", "198.18.0.2:7000",
                           "--tls-cert", test_cred("client.pem"), "--tls-key",
                           test_cred("client.key"), "--tls-ca", test_cred("ca.pem"),
                           "--report", run.report, NULL };
    double t0 = now_s();
    run.pid = harness_spawn(VMSHIFT_BIN, lan.c, args, run.out, NULL);
    struct json_object *r = NULL;
    int rc = host_evacuate_wait(&run, &r, 150);
    print_message("evacuate from C: exit %d after %.1f s\n", rc, now_s() - t0);
    assert_int_equal(rc, 0);
    assert_non_null(r);
    struct json_object *v = evac_report_vm(r, "web"), *dm;
    assert_non_null(v);
    assert_string_equal(json_str(v, "result"), "completed");
    assert_string_equal(json_str(v, "to-host"), "B");
    assert_true(json_object_object_get_ex(v, "digest-match", &dm) &&
                json_object_get_boolean(dm));
    struct json_object *m = json_member(v, "migration");
    assert_string_equal(json_str(json_member(m, "security"), "mode"), "tls-cert");
    assert_non_null(strstr(json_str(m, "peer"), "198.18.0.2:"));
    print_migration("A -> B", m);
    json_object_put(r);

    /* The VM runs on B, its guest at work and finding nothing wrong; A let it go (its
     * monitor, told to stop, ends as "migrated"). */
    double deadline = now_s() + 30;
    while (!strcmp(host_vm_state(&a, "web"), "stopping") && now_s() < deadline)
        usleep(50000);
    assert_string_equal(host_vm_state(&a, "web"), "migrated");
    assert_string_equal(host_vm_state(&b, "web"), "running");
    st = host_vm_wait_guest(&b, "web", "passes", passes + 2, 120);
    assert_int_equal(guest_u64(st, "errors"), 0);
    json_object_put(st);
    char out[8192];
    assert_int_equal(run_in_c(out, sizeof(out), "%s ctl 198.18.0.2:7000 vm-status name=web %s",
                              VMSHIFT_BIN, client_opts), 0);
    assert_non_null(strstr(out, "\"state\": \"running\""));
    host_proc_stop(&a);
    host_proc_stop(&b);
}

static bool log_has(const char *path, const char *text)
{
    char buf[16384];
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
    return strstr(buf, text) != NULL;
}

/* vmshiftd --listen alone; every client is refused but one with a certificate from the CA. */
static void only_clients_with_a_certificate_from_the_ca(void **state)
{
    (void)state;
    char dir[64], log[96], vms[96], out[8192];
    harness_temp_dir(dir, sizeof(dir));
    snprintf(log, sizeof(log), "%s/vmshiftd.log", dir);
    snprintf(vms, sizeof(vms), "%s/vms", dir);
    const char *const *certs = host_certs("source");
    const char *pre[] = { "--listen", "198.18.0.1:7001", "--state-dir", vms, "--name", "D",
                          "--vms-die-with-daemon", "--vmshift", VMSHIFT_BIN, NULL };
    pid_t d = harness_spawn(VMSHIFTD_BIN, lan.a, certs, log, pre);
    int rc = -1;
    for (int i = 0; i < 100 && rc != 0; i++) {
        rc = run_in_c(out, sizeof(out), "%s ctl 198.18.0.1:7001 host-status %s", VMSHIFT_BIN,
                      client_opts);
        if (rc)
            usleep(100000);
    }
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "\"host\": \"D\""));

    /* Another CA's certificate; an expired one from the right CA. */
    rc = run_in_c(out, sizeof(out), "%s ctl 198.18.0.1:7001 host-status --tls-cert %s "
                  "--tls-key %s --tls-ca %s", VMSHIFT_BIN, test_cred("other.pem"),
                  test_cred("other.key"), test_cred("ca.pem"));
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "rejected this client's certificate"));
    rc = run_in_c(out, sizeof(out), "%s ctl 198.18.0.1:7001 host-status --tls-cert %s "
                  "--tls-key %s --tls-ca %s", VMSHIFT_BIN, test_cred("expired.pem"),
                  test_cred("expired.key"), test_cred("ca.pem"));
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "as expired"));
    assert_null(strstr(out, "\"ok\""));

    /* A TLS client without a certificate gets an alert, not the greeting a client with
     * one gets from the same command. */
    const char *s_client = "timeout 3 openssl s_client -connect 198.18.0.1:7001 -quiet "
                           "-CAfile";
    run_in_c(out, sizeof(out), "%s %s -cert %s -key %s", s_client, test_cred("ca.pem"),
             test_cred("client.pem"), test_cred("client.key"));
    assert_non_null(strstr(out, "\"QMP\""));
    run_in_c(out, sizeof(out), "%s %s", s_client, test_cred("ca.pem"));
    assert_null(strstr(out, "\"QMP\""));
    assert_non_null(strstr(out, "certificate required"));

    /* Plain TCP: the daemon waits for TLS, the client is told. */
    rc = run_in_c(out, sizeof(out), "%s ctl 198.18.0.1:7001 host-status --insecure "
                  "--timeout 2000", VMSHIFT_BIN);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "waits for a TLS client"));

    /* The daemon named each refusal, and still serves; shut down from C. */
    assert_true(log_has(log, "presented a certificate (/CN=vmshift-other) that the CA"));
    assert_true(log_has(log, "expired"));
    assert_true(log_has(log, "sent no certificate"));
    assert_int_equal(run_in_c(out, sizeof(out), "%s ctl 198.18.0.1:7001 host-shutdown %s",
                              VMSHIFT_BIN, client_opts), 0);
    int st;
    double deadline = now_s() + 20;
    pid_t got;
    while ((got = waitpid(d, &st, WNOHANG)) == 0 && now_s() < deadline)
        usleep(20000);
    if (got == 0) {
        kill(d, SIGKILL);
        waitpid(d, &st, 0);
        fail_msg("vmshiftd --listen did not stop after host-shutdown");
    }
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* --listen without a security choice is refused before anything listens. */
static void listen_needs_a_security_choice(void **state)
{
    (void)state;
    char out[4096];
    int rc = run_in_c(out, sizeof(out), "%s --listen 198.18.0.3:7002 --state-dir /tmp",
                      VMSHIFTD_BIN);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "choose how --listen"));
    assert_non_null(strstr(out, "--tls-cert FILE --tls-key FILE --tls-ca FILE"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(evacuate_from_another_host),
        cmocka_unit_test(only_clients_with_a_certificate_from_the_ca),
        cmocka_unit_test(listen_needs_a_security_choice),
    };
    return cmocka_run_group_tests(tests, lan_create, lan_remove);
}
