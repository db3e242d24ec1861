/* The random fault campaign (scripts/faults.sh; docs/guide.md, "Random fault campaign"):
 *
 *   faults_random N [--seed S] [--device disk|nic|none] [--logs DIR] [--keep-logs]
 *                   [--trial-timeout SECONDS] [--dry-run]
 *
 * runs N trials, one after the other, trial i drawn from seed S+i (S random unless given;
 * `faults_random 1 --seed X` replays the trial of seed X). --device D runs only the seeds
 * from S on whose plan has that device (the plans are those of the seeds: a seed replays
 * as it is, with or without --device), until N ran. Each trial runs in a child
 * process of its own (harness failures and the processes it started end with it); the
 * result comes back through shared memory. One line per trial, then a table by fault
 * kind; exit status 1 if any trial lost or duplicated the VM, failed a check, or could not
 * run, with the seeds to replay. */
#include "random_plan.h"
#include "random_trial.h"
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct campaign {
    unsigned n, trial_timeout_s;
    uint64_t seed;
    bool keep_logs, dry_run;
    int device;                 /* --device: only plans with it (-1: any) */
    char logs[160];
    unsigned counts[RF_COUNT][RT_COUNT];
    char failing[4096];
};

struct child_ctx {
    const struct rplan *plan;
    char pid_file[300], log_dir[256];
    struct rt_result *result;
};

static void trial_test(void **state)
{
    struct child_ctx *k = *state;
    random_trial_run(k->plan, k->pid_file, k->log_dir, k->result);
}

static void run_child(struct child_ctx *k)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/trial.log", k->log_dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
    }
    const struct CMUnitTest t[] = { { .name = "random fault trial", .test_func = trial_test,
                                      .initial_state = k } };
    _cmocka_run_group_tests("random-trial", t, 1, NULL, NULL);
    fflush(stdout);
    fflush(stderr);
    _exit(0);     /* not exit: the parent's atexit handlers (the credentials) are its own */
}

/* The command line of a process ("" if it is gone), NULs turned into spaces. */
static void cmdline_of(int pid, char *out, size_t n)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
    FILE *f = fopen(path, "r");
    size_t got = f ? fread(out, 1, n - 1, f) : 0;
    if (f)
        fclose(f);
    for (size_t i = 0; i < got; i++)
        out[i] = out[i] ? out[i] : ' ';
    out[got] = '\0';
}

/* Every vmshift process that names one of the trial's directories (vmshiftd's VMs outlive
 * their daemon, and a trial that failed early did not record them all). */
static void kill_naming(const char *dir)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    char cmd[4096];
    while (d && (e = readdir(d))) {
        int pid = atoi(e->d_name);
        if (pid <= 0 || pid == getpid())
            continue;
        cmdline_of(pid, cmd, sizeof(cmd));
        if (strstr(cmd, "vmshift") && strstr(cmd, dir))
            kill(pid, SIGKILL);
    }
    if (d)
        closedir(d);
}

/* What the trial started and left behind: processes (by pid, if still vmshift),
 * directories (and whatever runs from them) and network namespaces. */
static void clean_leftovers(const char *pid_file)
{
    FILE *f = fopen(pid_file, "r");
    char line[300], cmd[4096];
    while (f && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        if (!strncmp(line, "dir /tmp/", 9)) {
            kill_naming(line + 4);
            snprintf(cmd, sizeof(cmd), "rm -rf '%s'", line + 4);
            if (system(cmd) != 0)
                printf("          could not remove %s\n", line + 4);
            continue;
        }
        if (!strncmp(line, "netns vsf", 9)) {
            snprintf(cmd, sizeof(cmd), "ip netns del '%s' 2>/dev/null", line + 6);
            if (system(cmd) != 0)
                (void)0;      /* already gone: the trial's tear-down removed it */
            continue;
        }
        int pid = atoi(line);
        cmdline_of(pid, cmd, sizeof(cmd));
        if (pid > 0 && strstr(cmd, "vmshift"))
            kill(pid, SIGKILL);
    }
    if (f)
        fclose(f);
}

/* The first failure message cmocka printed for the trial. */
static void failure_from_log(const char *log_dir, char *out, size_t n)
{
    char path[300], line[1024];
    snprintf(path, sizeof(path), "%s/trial.log", log_dir);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof(line), f)) {
        char *m = strstr(line, "] --- ");
        if (m) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(out, n, "set-up failed: %s", m + 6);
            break;
        }
    }
    if (f)
        fclose(f);
}

static void run_trial(const struct campaign *cp, const struct rplan *plan, const char *log_dir,
                      struct rt_result *r)
{
    memset(r, 0, sizeof(*r));
    r->outcome = RT_ERROR;
    snprintf(r->detail, sizeof(r->detail), "the trial ended before it was judged");
    struct child_ctx k = { .plan = plan, .result = r };
    snprintf(k.log_dir, sizeof(k.log_dir), "%s", log_dir);
    snprintf(k.pid_file, sizeof(k.pid_file), "%s/pids", log_dir);
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(r->detail, sizeof(r->detail), "fork: %s", strerror(errno));
        return;
    }
    if (pid == 0)
        run_child(&k);
    double deadline = now_s() + cp->trial_timeout_s;
    int st;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (now_s() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            r->outcome = RT_ERROR;
            snprintf(r->detail, sizeof(r->detail), "the trial did not finish in %u s",
                     cp->trial_timeout_s);
            break;
        }
        usleep(100000);
    }
    clean_leftovers(k.pid_file);
    if (r->outcome == RT_ERROR && !strcmp(r->detail, "the trial ended before it was judged"))
        failure_from_log(log_dir, r->detail, sizeof(r->detail));
}

static bool acceptable(enum rt_outcome o)
{
    return o == RT_SURVIVED || o == RT_OWNER_KILLED;
}

/* The seed of the next trial from *seed on (then past it): any, or one with --device's. */
static uint64_t next_seed(const struct campaign *cp, uint64_t *seed)
{
    for (;;) {
        struct rplan plan;
        uint64_t s = (*seed)++;
        rplan_draw(&plan, s);
        if (cp->device < 0 || (int)plan.device == cp->device)
            return s;
    }
}

static void one_trial(struct campaign *cp, unsigned i, uint64_t seed)
{
    struct rplan plan;
    rplan_draw(&plan, seed);
    char desc[320], log_dir[256];
    rplan_describe(&plan, desc, sizeof(desc));
    snprintf(log_dir, sizeof(log_dir), "%s/seed-%llu", cp->logs, (unsigned long long)seed);
    mkdir(log_dir, 0755);
    printf("[%3u/%u] seed %-12llu %s", i + 1, cp->n, (unsigned long long)seed, desc);
    fflush(stdout);
    struct rt_result *r = mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE,
                               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (r == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    double t0 = now_s();
    run_trial(cp, &plan, log_dir, r);
    printf(" => %s, %s runs (source: %s)%s%s (%.1f s)%s%s\n", rt_outcome_name(r->outcome),
           r->runs[0] ? r->runs : "?", r->src_end[0] ? r->src_end : "?",
           r->fired[0] ? ", struck at " : "", r->fired,
           now_s() - t0, r->detail[0] ? ": " : "", r->detail);
    cp->counts[plan.fault][r->outcome]++;
    if (!acceptable(r->outcome)) {
        size_t used = strlen(cp->failing);
        snprintf(cp->failing + used, sizeof(cp->failing) - used, " %llu",
                 (unsigned long long)seed);
        printf("          logs: %s\n", log_dir);
    } else if (!cp->keep_logs) {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", log_dir);
        if (system(cmd) != 0)
            printf("          could not remove %s\n", log_dir);
    }
    fflush(stdout);
    munmap(r, sizeof(*r));
}

static void print_table(const struct campaign *cp)
{
    unsigned total[RT_COUNT] = { 0 }, all = 0;
    printf("\n%-12s %7s", "fault", "trials");
    for (int o = 0; o < RT_COUNT; o++)
        printf(" %12s", rt_outcome_name((enum rt_outcome)o));
    printf("\n");
    for (int f = 0; f < RF_COUNT; f++) {
        unsigned n = 0;
        for (int o = 0; o < RT_COUNT; o++)
            n += cp->counts[f][o];
        if (!n)
            continue;
        printf("%-12s %7u", rplan_fault_name((enum rp_fault)f), n);
        for (int o = 0; o < RT_COUNT; o++) {
            printf(" %12u", cp->counts[f][o]);
            total[o] += cp->counts[f][o];
        }
        printf("\n");
        all += n;
    }
    printf("%-12s %7u", "total", all);
    for (int o = 0; o < RT_COUNT; o++)
        printf(" %12u", total[o]);
    printf("\n");
}

static void usage(void)
{
    fprintf(stderr, "usage: faults_random N [--seed S] [--device disk|nic|none] [--logs DIR] "
                    "[--keep-logs] [--trial-timeout SECONDS] [--dry-run]\n"
                    "  N trials; trial i uses seed S+i, so `faults_random 1 --seed X` replays "
                    "the trial of seed X; --device runs only the seeds whose plan has that "
                    "device; --dry-run prints the plans only\n");
    exit(2);
}

static int parse_device(const char *name)
{
    static const char *const names[] = { "none", "disk", "nic" };
    for (int d = 0; d < 3; d++)
        if (!strcmp(name, names[d]))
            return d;
    fprintf(stderr, "--device %s: not a device; give disk, nic or none\n", name);
    exit(2);
}

static void parse(struct campaign *cp, int argc, char **argv)
{
    cp->device = -1;
    if (argc < 2 || atoi(argv[1]) <= 0)
        usage();
    cp->n = (unsigned)atoi(argv[1]);
    cp->trial_timeout_s = 300;
    cp->seed = ((uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16)) % 1000000000ull;
    for (int i = 2; i < argc; i++) {
        bool more = i + 1 < argc;
        if (!strcmp(argv[i], "--seed") && more)
            cp->seed = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--logs") && more)
            snprintf(cp->logs, sizeof(cp->logs), "%s", argv[++i]);
        else if (!strcmp(argv[i], "--trial-timeout") && more)
            cp->trial_timeout_s = (unsigned)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--device") && more)
            cp->device = parse_device(argv[++i]);
        else if (!strcmp(argv[i], "--keep-logs"))
            cp->keep_logs = true;
        else if (!strcmp(argv[i], "--dry-run"))
            cp->dry_run = true;
        else
            usage();
    }
    if (!cp->logs[0])
        snprintf(cp->logs, sizeof(cp->logs), "/tmp/vmshift-faults-%llu",
                 (unsigned long long)cp->seed);
}

int main(int argc, char **argv)
{
    static struct campaign cp;
    parse(&cp, argc, argv);
    uint64_t seed = cp.seed;
    for (unsigned i = 0; cp.dry_run && i < cp.n; i++) {
        struct rplan plan;
        char desc[320];
        uint64_t s = next_seed(&cp, &seed);
        rplan_draw(&plan, s);
        printf("seed %-12llu %s\n", (unsigned long long)s,
               rplan_describe(&plan, desc, sizeof(desc)));
    }
    if (cp.dry_run)
        return 0;
    require_kvm();
    mkdir(cp.logs, 0755);
    (void)test_cred("psk");     /* the credentials, made once for every trial */
    printf("random fault campaign: %u trial(s), seeds from %llu%s, logs of failing trials in "
           "%s\nreplay one trial: scripts/faults.sh 1 --seed SEED\n\n", cp.n,
           (unsigned long long)cp.seed, cp.device >= 0 ? " (with --device's only)" : "",
           cp.logs);
    double t0 = now_s();
    for (unsigned i = 0; i < cp.n; i++)
        one_trial(&cp, i, next_seed(&cp, &seed));
    print_table(&cp);
    printf("%u trial(s) in %.0f s\n", cp.n, now_s() - t0);
    if (cp.failing[0]) {
        printf("FAILING SEEDS:%s\nreplay each with: scripts/faults.sh 1 --seed SEED\n",
               cp.failing);
        return 1;
    }
    if (!cp.keep_logs)
        rmdir(cp.logs);
    return 0;
}
