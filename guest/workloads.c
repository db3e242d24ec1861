#include "workloads.h"
#include "disk.h"
#include "guest.h"
#include "io.h"
#include "net_stream.h"
#include "net_workload.h"
#include "rate.h"
#include "serial.h"
#include "telemetry.h"
#include "timer.h"
#include "timing.h"
#include "vmshift/page_format.h"

/* Doorbell at least this often within a pass, so the monitor sees progress. */
#define BELL_PAGES 65536
/* ...and at least this often, so status stays fresh at low dirty rates. */
#define BELL_US 50000u
/* Bad pages reported on serial, over all vCPUs; serial output is slow. */
#define MAX_REPORTS 8

struct worker {
    unsigned cpu;
    uint32_t workload, fill;
    uint64_t seed;
    uint64_t first, pages;                  /* this vCPU's slice: pages of the range */
    struct vs_cpu_counters c;               /* private copy, published per chunk */
    volatile struct vs_cpu_counters *pub;
    uint64_t since_bell;
    uint32_t last_bell_us;
    struct vs_rate rate;
};

static uint32_t reports;

static int may_report(void)
{
    return __atomic_fetch_add(&reports, 1, __ATOMIC_RELAXED) < MAX_REPORTS;
}

static void publish(struct worker *w)
{
    w->pub->passes = w->c.passes;
    w->pub->pages_written = w->c.pages_written;
    w->pub->pages_checked = w->c.pages_checked;
    w->pub->errors = w->c.errors;
    w->pub->generation = w->c.generation;
    w->pub->first_bad_addr = w->c.first_bad_addr;
}

static void record_bad(struct worker *w, uint64_t paddr)
{
    if (!w->c.errors)
        w->c.first_bad_addr = paddr;
    w->c.errors++;
}

/* once: the loader's fill must still be there. Three words per page: both ends and one
 * in between that moves with the page frame number. Every pass counts what it finds, so
 * errors keeps growing while a page stays bad. */
static void check_fill(struct worker *w, uint64_t paddr, unsigned n)
{
    for (unsigned i = 0; i < n; i++, paddr += VS_PAGE_SIZE) {
        const volatile uint64_t *page = (const volatile uint64_t *)paddr;
        unsigned words[3] = { 0, (unsigned)((paddr >> 12) % 509) + 1, VS_PAGE_WORDS - 1 };

        for (unsigned k = 0; k < 3; k++) {
            uint64_t want = vs_fill_word(w->fill, w->seed, paddr + 8 * words[k]);
            uint64_t got = page[words[k]];

            if (got == want)
                continue;
            record_bad(w, paddr);
            if (may_report()) {
                struct vs_line l;

                vs_line_start(&l);
                vs_line_str(&l, "bad page ");
                vs_line_hex(&l, paddr);
                vs_line_str(&l, " expected ");
                vs_line_hex(&l, want);
                vs_line_str(&l, " found ");
                vs_line_hex(&l, got);
                vs_line_str(&l, " (word ");
                vs_line_dec(&l, words[k]);
                vs_line_str(&l, ")");
                vs_line_end(&l);
            }
            break;
        }
    }
    w->c.pages_checked += n;
}

/* continuous: the dirtying benchmark, one store per page. The value changes every pass
 * so that no pass leaves memory as it found it. */
static void dirty(struct worker *w, uint64_t paddr, unsigned n)
{
    uint64_t tag = w->c.passes + 1;

    for (unsigned i = 0; i < n; i++, paddr += VS_PAGE_SIZE)
        *(volatile uint64_t *)paddr = tag ^ paddr;
    w->c.pages_written += n;
}

static const char *const verify_results[] = { "ok", "wrong-addr", "stale", "bad-sum", "torn" };

static void report_verify(struct worker *w, uint64_t paddr, int result)
{
    const volatile uint64_t *page = (const volatile uint64_t *)paddr;
    struct vs_line l;

    vs_line_start(&l);
    vs_line_str(&l, "verify error at ");
    vs_line_hex(&l, paddr);
    vs_line_str(&l, " gen ");
    vs_line_dec(&l, w->c.generation - 1);
    vs_line_str(&l, ": ");
    vs_line_str(&l, verify_results[result]);
    vs_line_str(&l, " addr=");
    vs_line_hex(&l, page[0]);
    vs_line_str(&l, " gen=");
    vs_line_hex(&l, page[1]);
    vs_line_str(&l, " sum=");
    vs_line_hex(&l, page[2]);
    vs_line_str(&l, " trailer=");
    vs_line_hex(&l, page[VS_PAGE_WORDS - 1]);
    vs_line_end(&l);
}

/* verify: every page must still hold the previous generation before it gets the next. */
static void verify(struct worker *w, uint64_t paddr, unsigned n)
{
    uint64_t gen = w->c.generation;

    for (unsigned i = 0; i < n; i++, paddr += VS_PAGE_SIZE) {
        volatile uint64_t *page = (volatile uint64_t *)paddr;

        if (gen > 1) {
            int r = vs_verify_check(page, paddr, gen - 1, w->seed);

            if (r != VS_VERIFY_OK) {
                record_bad(w, paddr);
                if (may_report())
                    report_verify(w, paddr, r);
            }
        }
        vs_verify_write(page, paddr, gen, w->seed);
    }
    if (gen > 1)
        w->c.pages_checked += n;
    w->c.pages_written += n;
}

static void report_pass(struct worker *w, uint32_t pass_us)
{
    struct vs_line l;

    vs_line_start(&l);
    vs_line_str(&l, "cpu");
    vs_line_dec(&l, w->cpu);
    vs_line_str(&l, " pass ");
    vs_line_dec(&l, w->c.passes);
    vs_line_str(&l, " written=");
    vs_line_dec(&l, w->c.pages_written);
    vs_line_str(&l, " checked=");
    vs_line_dec(&l, w->c.pages_checked);
    vs_line_str(&l, " errors=");
    vs_line_dec(&l, w->c.errors);
    if (pass_us) {
        vs_line_str(&l, " pages/s=");
        vs_line_dec(&l, w->pages * 1000000 / pass_us);
    }
    vs_line_end(&l);
}

static void process(struct worker *w, uint64_t paddr, unsigned n)
{
    switch (w->workload) {
    case VS_WORKLOAD_ONCE:
        check_fill(w, paddr, n);
        break;
    case VS_WORKLOAD_CONTINUOUS:
        dirty(w, paddr, n);
        break;
    default:
        verify(w, paddr, n);
        break;
    }
}

static void ring(struct worker *w)
{
    vs_telemetry_doorbell(w->cpu);
    w->since_bell = 0;
    w->last_bell_us = vs_now_us();
}

static __attribute__((noreturn)) void run_passes(struct worker *w)
{
    /* once only reads; rate limits are about dirtying. */
    int throttled = w->workload != VS_WORKLOAD_ONCE;

    if (throttled)
        vs_rate_init(&w->rate, w->cpu, vs_guest.params.cpus);
    vs_telemetry_set_state(w->cpu, VS_GUEST_RUNNING);
    for (;;) {
        uint32_t t0 = vs_now_us();

        if (w->workload == VS_WORKLOAD_VERIFY)
            w->c.generation = w->c.passes + 1;
        for (uint64_t done = 0; done < w->pages;) {
            unsigned n = throttled ? vs_rate_gate(&w->rate) : VS_CHUNK_PAGES;
            uint64_t run, paddr = vs_params_page_addr(&vs_guest.params, w->first + done, &run);

            if (n > w->pages - done)
                n = (unsigned)(w->pages - done);
            if (n > run)
                n = (unsigned)run;      /* a chunk never crosses a gap between RAM pieces */
            process(w, paddr, n);
            done += n;
            if (throttled)
                vs_rate_done(&w->rate, n);
            publish(w);
            w->since_bell += n;
            if (w->since_bell >= BELL_PAGES || vs_now_us() - w->last_bell_us >= BELL_US)
                ring(w);
        }
        w->c.passes++;
        publish(w);
        ring(w);
        if (!vs_guest.params.quiet && !(w->c.passes & (w->c.passes - 1)))
            report_pass(w, vs_now_us() - t0);
    }
}

void vs_workload_run(unsigned cpu)
{
    const struct vs_guest_params *p = &vs_guest.params;
    uint64_t total = p->size / VS_PAGE_SIZE, share = total / p->cpus;
    struct worker w = {
        .cpu = cpu,
        .workload = p->workload,
        .fill = p->fill,
        .seed = p->seed,
        .first = cpu * share,
        /* The last vCPU takes the remainder. */
        .pages = share + (cpu == p->cpus - 1 ? total % p->cpus : 0),
        .pub = vs_telemetry_cpu(cpu),
    };

    if (p->workload == VS_WORKLOAD_TIMER || p->workload == VS_WORKLOAD_DISK) {
        if (cpu == 0 && p->workload == VS_WORKLOAD_TIMER)
            vs_timer_run(cpu);
        if (cpu == 0)
            vs_disk_run(cpu);
        /* The other vCPUs keep memory busy meanwhile. */
        w.workload = VS_WORKLOAD_VERIFY;
    }
    if (p->workload == VS_WORKLOAD_NET && cpu == 0)
        vs_net_workload_run(cpu);
    if (p->workload == VS_WORKLOAD_NET_STREAM && cpu == 0)
        vs_net_stream_run(cpu, p);
    if (p->workload == VS_WORKLOAD_IDLE || p->workload == VS_WORKLOAD_NET ||
        p->workload == VS_WORKLOAD_NET_STREAM) {
        vs_telemetry_set_state(cpu, VS_GUEST_IDLE);
        if (cpu == 0)
            vs_puts("vmshift-guest: idle");
        halt_forever();
    }
    run_passes(&w);
}
