#include "fault_trial.h"
#include "harness.h"
#include "thp_collapse.h"
#include "ctl/ctl_client.h"

#include <errno.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static unsigned trials, survived;

bool fault_proc_alive(struct vm_proc *p)
{
    if (p->pid <= 0)
        return false;
    int st;
    if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
        p->exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        p->pid = 0;
        return false;
    }
    return true;
}

/* A control reply, or NULL when the process does not answer (gone or not ready). */
struct json_object *fault_ask(struct vm_proc *p, const char *cmd)
{
    struct json_object *reply = NULL;
    if (!fault_proc_alive(p) || access(p->sock, F_OK) || ctl_command(p->sock, cmd, NULL, &reply, 3000))
        return NULL;
    return reply;
}

static const char *migration_status(struct json_object *st)
{
    struct json_object *m;
    return st && json_object_object_get_ex(st, "migration", &m) ? json_str(m, "status") : "";
}

static bool is_final(const char *s)
{
    return !strcmp(s, "completed") || !strcmp(s, "failed") || !strcmp(s, "cancelled") ||
           !strcmp(s, "unconfirmed");
}

static const char *fault_text(const struct fault_trial *t, char *buf, size_t n)
{
    static const char *const act[] = { "none", "cut", "corrupt", "stall" };
    snprintf(buf, n, "src[%s] dst[%s] link[%s %s @%llu] %s%s%s",
             t->src_fault ? t->src_fault : "", t->dst_fault ? t->dst_fault : "",
             act[t->link.action], t->link.dir == PROXY_TO_DST ? "->dst" : "->src",
             (unsigned long long)t->link.offset, t->plain ? "plain" : "tls",
             t->postcopy ? " post-copy" : "", t->disk ? " shared-disk" : "");
    return buf;
}

static bool logged(struct vm_proc *p, const char *text)
{
    char path[160], buf[65536];
    snprintf(path, sizeof(path), "%s", p->stderr_path);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
    return strstr(buf, text) != NULL;
}

bool fault_fired(struct vm_proc *p)
{
    return logged(p, "fault injected:");
}

void assert_verify_clean(struct vm_proc *p, const char *who)
{
    struct json_object *st = vm_cmd(p, "status", NULL);
    uint64_t passes = guest_u64(st, "passes");
    json_object_put(st);
    st = wait_guest_at_least(p, "passes", passes + 2, 60);
    if (guest_u64(st, "errors") != 0)
        fail_msg("the %s's guest found %llu bad pages", who,
                 (unsigned long long)guest_u64(st, "errors"));
    json_object_put(st);
}

/* Quit the process if it still runs, and fail the trial if a sanitizer complained in it
 * (the ASan build runs the same suite); then remove its directory. */
static void stop_checked(struct vm_proc *p, const char *who)
{
    if (fault_proc_alive(p)) {
        struct json_object *r = NULL;
        if (ctl_command(p->sock, "quit", NULL, &r, 5000) == 0)
            json_object_put(r);
        vm_proc_wait_exit(p, 20);
    }
    FILE *f = fopen(p->stderr_path, "r");
    char line[1024];
    while (f && fgets(line, sizeof(line), f))
        if (strstr(line, "Sanitizer") || strstr(line, "runtime error")) {
            fclose(f);
            fail_msg("the %s reported: %s", who, line);
        }
    if (f)
        fclose(f);
    vm_proc_stop(p);
}

static void dump(struct vm_proc *p, const char *who)
{
    FILE *f = fopen(p->stderr_path, "r");
    char buf[8192];
    size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    buf[n] = '\0';
    if (f)
        fclose(f);
    print_message("---- %s stderr ----\n%s\n", who, buf);
}

/* Post-copy trials do not rely on pre-copy stalling (a guest starved by a loaded host may
 * dirty nothing for a pass, and pre-copy then completes): once pre-copy runs, post-copy is
 * asked for, as an operator would, and starts at the end of that pass. */
static void request_postcopy(struct vm_proc *src)
{
    double deadline = now_s() + 30;
    while (now_s() < deadline) {
        struct json_object *st = fault_ask(src, "status"), *r = NULL;
        const char *s = migration_status(st);
        bool active = !strcmp(s, "active"), later = is_final(s) || !strcmp(s, "switchover");
        json_object_put(st);
        if (active && ctl_command(src->sock, "start-postcopy", NULL, &r, 3000) == 0) {
            json_object_put(r);
            return;
        }
        if (later || !fault_proc_alive(src))
            return;   /* a fault came first: the trial judges what happened */
        usleep(20000);
    }
}

/* While the destination stalls at its fault: 2 MiB pages over its memory, now. */
static void collapse_when_fired(struct vm_proc *dst)
{
    double deadline = now_s() + 30;
    while (!fault_fired(dst) && fault_proc_alive(dst) && now_s() < deadline)
        usleep(20000);
    int n = thp_collapse_anon(dst->pid);
    if (n < 0)
        fail_msg("MADV_COLLAPSE on the destination (pid %d): %s", (int)dst->pid,
                 strerror(errno));
    print_message("MADV_COLLAPSE: 2 MiB pages assembled in %d mapping(s) of the "
                  "destination\n", n);
}

void run_fault_trial(const struct fault_trial *t)
{
    char what[256], env[200];
    fault_text(t, what, sizeof(what));
    double t0 = now_s();
    trials++;
    struct vm_proc src, dst;
    test_security_use(t->plain ? TEST_SEC_INSECURE : TEST_SEC_PSK);
    snprintf(env, sizeof(env), "VMSHIFT_FAULT=%s", t->src_fault ? t->src_fault : "");
    harness_child_env(env);
    struct fault_disk disk = { .dir = "" };
    if (t->disk) {
        fault_disk_create(&disk);
        vm_proc_start(&src, ARGS("--mem", "8M", "--vcpus", "2", "--workload", "disk", "--disk",
                                 disk.spec, "--append", "disk_blocks=32"));
    } else {
        vm_proc_start(&src, ARGS("--mem", "8M", "--vcpus", "2", "--workload", "verify"));
    }
    snprintf(env, sizeof(env), "VMSHIFT_FAULT=%s", t->dst_fault ? t->dst_fault : "");
    harness_child_env(env);
    /* One attempt: a receiver whose first connection fails before a valid HELLO exits
     * (by default it would wait for another source). */
    /* The collapse needs anonymous RAM, whatever `auto` picks on this host. */
    if (t->collapse)
        vm_receiver_start(&dst, "127.0.0.1", NULL, ARGS("--timeout", "3", "--max-refused", "0",
                                                        "--ram-backing", "anon"));
    else
        vm_receiver_start(&dst, "127.0.0.1", NULL, ARGS("--timeout", "3", "--max-refused", "0"));
    json_object_put(wait_guest_at_least(&src, "passes", 1, 30));
    int port = dst.port;
    struct test_proxy *proxy = NULL;
    if (t->link.action != PROXY_NONE)
        proxy = proxy_start(dst.port, &t->link, &port);
    char to[64];
    snprintf(to, sizeof(to), "127.0.0.1:%d", port);
    /* At least three pre-copy passes (0, 1, 2), then the switchover; capped at 16 MB/s so
     * that the guest dirties pages during each pass (uncapped, loopback sends all in a
     * few ms). A limit of 0 never fits; each pass that leaves as much as it sent is a
     * stall and takes one step of the schedule: after the third the limit fits. */
    struct json_object *a = json_object_new_object();
    json_object_object_add(a, "max_bandwidth", json_object_new_int(16 << 20));
    json_object_object_add(a, "downtime_limit", json_object_new_int(0));
    if (t->postcopy)
        json_object_object_add(a, "converge", json_object_new_string("postcopy"));
    else
        json_object_object_add(a, "downtime_schedule", json_object_new_string("1,2,60000"));
    json_object_object_add(a, "timeout_ms", json_object_new_int(3000));
    json_object_object_add(a, "streams", json_object_new_int(1));
    if (t->disk)
        fault_disk_watch(&disk, &src, &dst);
    vm_migrate_start(&src, to, a);
    json_object_put(a);
    if (t->postcopy)
        request_postcopy(&src);
    if (t->collapse)
        collapse_when_fired(&dst);

    /* Settled: each side is gone, or the source's migration is final and the
     * destination either runs its VM or has exited. */
    struct json_object *sst = NULL, *dstt = NULL;
    double deadline = now_s() + 45;
    for (;;) {
        json_object_put(sst);
        json_object_put(dstt);
        sst = fault_ask(&src, "status");
        dstt = fault_ask(&dst, "status");
        if (t->disk)
            fault_disk_look(&disk, &src, &dst);
        bool src_done = !fault_proc_alive(&src) || (sst && is_final(migration_status(sst)));
        bool dst_done = !fault_proc_alive(&dst) || (dstt && !strcmp(json_str(dstt, "state"), "running"));
        if (src_done && dst_done)
            break;
        if (now_s() > deadline) {
            dump(&src, "source");
            dump(&dst, "destination");
            harness_dump_stacks(src.pid, "source");
            harness_dump_stacks(dst.pid, "destination");
            fail_msg("%s: not settled after 45 s: source %s, destination %s", what,
                     sst ? migration_status(sst) : "gone",
                     dstt ? json_str(dstt, "state") : fault_proc_alive(&dst) ? "busy" : "gone");
        }
        usleep(100000);
    }
    if ((t->src_fault && !fault_fired(&src)) || (t->dst_fault && !fault_fired(&dst)) ||
        (proxy && !proxy_fired(proxy))) {
        dump(&src, "source");
        dump(&dst, "destination");
        fail_msg("%s: the fault was never reached", what);
    }
    /* A line the processes write as they settle may land just after the status turned. */
    for (int i = 0; i < 30 && t->expect_log && !logged(&src, t->expect_log) &&
                    !logged(&dst, t->expect_log); i++)
        usleep(100000);
    if (t->expect_log && !logged(&src, t->expect_log) && !logged(&dst, t->expect_log)) {
        dump(&src, "source");
        dump(&dst, "destination");
        fail_msg("%s: neither side logged \"%s\"", what, t->expect_log);
    }
    bool src_runs = sst && !strcmp(json_str(sst, "state"), "running");
    bool dst_runs = dstt && !strcmp(json_str(dstt, "state"), "running");
    if (src_runs && dst_runs)
        fail_msg("%s: TWO VMs run", what);
    bool ok = t->expect == EXPECT_SOURCE ? src_runs && !dst_runs :
              t->expect == EXPECT_DEST ? dst_runs && !src_runs :
              t->expect == EXPECT_ONE ? src_runs != dst_runs : !src_runs && !dst_runs;
    if (!ok) {
        dump(&src, "source");
        dump(&dst, "destination");
        fail_msg("%s: source %s (%s), destination %s: not the expected outcome %d", what,
                 src_runs ? "runs" : "does not run", sst ? migration_status(sst) : "gone",
                 dst_runs ? "runs" : "does not run", t->expect);
    }
    if (dst_runs) {
        /* The copy that runs is the one the source paused: the destination's RAM digest at
         * the resume equals the source's DIGEST (the source's report, when it lives). */
        struct json_object *in;
        assert_true(json_object_object_get_ex(dstt, "incoming", &in));
        const char *dd = json_str(in, "ram-digest");
        assert_int_equal(strlen(dd), 16);
        if (sst) {
            struct json_object *m;
            assert_true(json_object_object_get_ex(sst, "migration", &m));
            assert_string_equal(json_str(m, "ram-digest"), dd);
        }
        assert_verify_clean(&dst, "destination");
    }
    if (src_runs)
        assert_verify_clean(&src, "source");
    if (t->disk)
        fault_disk_check(&disk, &src, &dst, src_runs ? &src : dst_runs ? &dst : NULL, what);
    print_message("trial %u: %s -> %s runs, source %s (%.1f s)\n", trials, what,
                  src_runs ? "source" : dst_runs ? "destination" : "nothing",
                  sst ? migration_status(sst) : "killed", now_s() - t0);
    survived++;
    json_object_put(sst);
    json_object_put(dstt);
    proxy_stop(proxy);
    stop_checked(&src, "source");
    stop_checked(&dst, "destination");
    fault_disk_remove(&disk);
}

void fault_trials_summary(void)
{
    print_message("fault trials: %u run, %u survived\n", trials, survived);
}

static void trial_test(void **state)
{
    run_fault_trial(*state);
}

int run_fault_trials(const char *group, const struct fault_trial *cases, size_t n)
{
    const char *e = getenv("VMSHIFT_FAULT_SAMPLE");
    size_t sample = e && atoi(e) > 1 ? (size_t)atoi(e) : 1, count = 0;
    struct CMUnitTest *tests = calloc(n, sizeof(*tests));
    char (*names)[96] = calloc(n, sizeof(*names));
    static const char *const act[] = { "", "cut", "corrupt", "stall" };
    assert_non_null(tests);
    assert_non_null(names);
    for (size_t i = 0; i < n; i += sample, count++) {
        const struct fault_trial *c = &cases[i];
        if (c->src_fault || c->dst_fault)
            snprintf(names[count], sizeof(names[count]), "%s", c->src_fault ? c->src_fault
                                                                              : c->dst_fault);
        else
            snprintf(names[count], sizeof(names[count]), "link %s %s at %llu (%s%s)",
                     act[c->link.action], c->link.dir == PROXY_TO_DST ? "to destination"
                                                                        : "to source",
                     (unsigned long long)c->link.offset, c->plain ? "plain" : "tls",
                     c->link.hold_open ? ", held open" : "");
        tests[count] = (struct CMUnitTest){ .name = names[count], .test_func = trial_test,
                                            .initial_state = (void *)c };
    }
    int rc = _cmocka_run_group_tests(group, tests, count, NULL, NULL);
    fault_trials_summary();
    free(tests);
    free(names);
    return rc;
}
