/* Fault suite, a VM on shared storage (issue 15: "a cut during the blackout never leaves
 * two writers"): the guest runs the disk workload on a file both sides reach (--disk
 * FILE,shared), and the migration's streams are cut, a side killed or stalled in the
 * blackout and the commit window (docs/state-machine.md, "The commit window"). Afterwards
 * exactly one side runs the VM as in test_faults_commit, its disk workload verifies every
 * block with 0 errors and goes on, and the two sides never both had the disk open for
 * writing: a thread samples both processes' descriptors of the file every 2 ms from the
 * migrate request on, each look compares their status of the disk, and the side without
 * the VM writes nothing while the survivor's workload is checked (fault_disk.c). */
#include "disk_writers.h"
#include "fault_trial.h"
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define SRC(f, e) { .src_fault = (f), .expect = (e), .disk = true }
#define DST(f, e) { .dst_fault = (f), .expect = (e), .disk = true }
#define PC_DST(f, e) { .dst_fault = (f), .expect = (e), .disk = true, .postcopy = true }

static const struct fault_trial cases[] = {
    /* Stream 0 cut in the blackout, at each step of the commit window. */
    SRC("src.digest:0:cut", EXPECT_SOURCE),     /* before the destination verified */
    SRC("src.verdict:0:cut", EXPECT_DEST),
    SRC("src.commit:0:cut", EXPECT_DEST),       /* committed, COMMIT not sent */
    SRC("src.granted:0:cut", EXPECT_DEST),      /* granted (disk closed), GRANT not sent */
    DST("dst.commit:0:cut", EXPECT_DEST),       /* COMMIT arrived, CLAIM not sent */
    DST("dst.claimed:0:cut", EXPECT_DEST),      /* claimed, GRANT lost */
    /* Killed in the window: the source after its grant, the destination before its claim. */
    SRC("src.granted:0:kill", EXPECT_DEST),
    DST("dst.commit:0:kill", EXPECT_SOURCE),
    /* A destination slower than the source's timeout right after its claim. */
    DST("dst.claimed:0:stall=4500", EXPECT_ONE),
    /* Post-copy: the destination runs on the shared disk while pages still arrive (its
     * disk's queue may sit on a missing page: random campaign, seed 2 with --device disk),
     * and a cut before its claim gives the VM back to the source. */
    PC_DST("dst.granted:0:stall=4500", EXPECT_DEST),
    PC_DST("dst.commit:0:cut", EXPECT_SOURCE),
};

/* A shell that holds path open (redirection "<>" to write, "<" to read) for a while. */
static pid_t holder(const char *path, const char *redirect)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "exec 3%s'%s'; sleep 2", redirect, path);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static unsigned watch_pair(const char *path, const char *a_redirect, const char *b_redirect)
{
    pid_t a = holder(path, a_redirect), b = holder(path, b_redirect);
    usleep(300000);
    assert_true(disk_fd_writes(a, path) == (a_redirect[0] == '<' && a_redirect[1] == '>'));
    struct disk_watch *w = disk_watch_start(a, b, path);
    usleep(300000);
    unsigned samples, both;
    double at;
    disk_watch_stop(w, &samples, &both, &at);
    kill(a, SIGKILL);
    kill(b, SIGKILL);
    waitpid(a, NULL, 0);
    waitpid(b, NULL, 0);
    assert_true(samples > 10);
    return both;
}

/* The check can fail: two processes that hold the file open for writing are two writers;
 * a reader beside a writer is not. */
static void the_watch_sees_two_writers(void **state)
{
    (void)state;
    char dir[] = "/tmp/vs-fdwatch-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/disk.img", dir);
    assert_true(disk_file_create(path, 1 << 20));
    unsigned two = watch_pair(path, "<>", "<>"), one = watch_pair(path, "<", "<>");
    unlink(path);
    rmdir(dir);
    print_message("two writers: %u samples with both; a reader and a writer: %u\n", two, one);
    assert_true(two > 0);
    assert_int_equal(one, 0);
}

int main(void)
{
    const struct CMUnitTest self[] = { cmocka_unit_test(the_watch_sees_two_writers) };
    int rc = cmocka_run_group_tests_name("faults_disk_watch", self, NULL, NULL);
    return rc | run_fault_trials("faults_disk", cases, sizeof(cases) / sizeof(cases[0]));
}
