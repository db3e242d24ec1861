#include "common/fault.h"
#include "transport/channel.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_RULES 8

enum action { ACT_KILL, ACT_CUT, ACT_STALL };

struct rule {
    char point[48];
    bool any;
    uint64_t n;
    enum action action;
    unsigned stall_ms;
    bool fired;
};

static struct rule rules[MAX_RULES];
static unsigned nr_rules;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void parse_rules(void)
{
    const char *env = getenv("VMSHIFT_FAULT");
    if (!env)
        return;
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", env);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok && nr_rules < MAX_RULES;
         tok = strtok_r(NULL, ",", &save)) {
        struct rule r = { .stall_ms = 5000 };
        char *n = strchr(tok, ':'), *act = n ? strchr(n + 1, ':') : NULL;
        if (!n || !act) {
            fprintf(stderr, "VMSHIFT_FAULT: '%s' is not POINT:N:ACTION; ignored\n", tok);
            continue;
        }
        *n++ = '\0';
        *act++ = '\0';
        snprintf(r.point, sizeof(r.point), "%s", tok);
        r.any = !strcmp(n, "*");
        r.n = strtoull(n, NULL, 10);
        if (!strcmp(act, "kill")) {
            r.action = ACT_KILL;
        } else if (!strcmp(act, "cut")) {
            r.action = ACT_CUT;
        } else if (!strncmp(act, "stall", 5)) {
            r.action = ACT_STALL;
            if (act[5] == '=')
                r.stall_ms = (unsigned)strtoul(act + 6, NULL, 10);
        } else {
            fprintf(stderr, "VMSHIFT_FAULT: unknown action '%s'; ignored\n", act);
            continue;
        }
        rules[nr_rules++] = r;
    }
}

void vs_fault_point(const char *point, uint64_t n, struct vs_channel *ch)
{
    pthread_once(&once, parse_rules);
    if (!nr_rules)
        return;
    struct rule *hit = NULL;
    pthread_mutex_lock(&lock);
    for (unsigned i = 0; i < nr_rules && !hit; i++)
        if (!rules[i].fired && !strcmp(rules[i].point, point) && (rules[i].any || rules[i].n == n))
            hit = &rules[i];
    if (hit)
        hit->fired = true;
    pthread_mutex_unlock(&lock);
    if (!hit)
        return;
    static const char *const names[] = { "kill", "cut", "stall" };
    fprintf(stderr, "fault injected: %s %llu %s\n", point, (unsigned long long)n,
            names[hit->action]);
    switch (hit->action) {
    case ACT_KILL:
        kill(getpid(), SIGKILL);
        pause();
        break;
    case ACT_CUT:
        if (ch)
            vs_channel_cut(ch);
        break;
    case ACT_STALL: {
        struct timespec ts = { .tv_sec = hit->stall_ms / 1000,
                               .tv_nsec = (long)(hit->stall_ms % 1000) * 1000000 };
        while (nanosleep(&ts, &ts) < 0)
            ;
        break;
    }
    }
}
