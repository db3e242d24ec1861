#include "timer.h"
#include "console_in.h"
#include "fmt.h"
#include "guest.h"
#include "irq.h"
#include "lapic.h"
#include "pit.h"
#include "platform.h"
#include "serial.h"
#include "telemetry.h"
#include "timing.h"
#include "virtio_rng.h"

/* Doorbell at least this often, so the monitor's view stays fresh. */
#define BELL_US 50000u
#define PIT_IRQ 0

/* Written by the tick handler only (vCPU 0, interrupts off); read by the loop on vCPU 0
 * between two hlt, also with interrupts off. */
struct ticks {
    int armed;                      /* a timer is programmed */
    uint64_t count;
    uint64_t errors;
    uint64_t max_gap_us;
    uint32_t first_us, last_us;
    uint32_t backwards_us;          /* the last backward step seen, for the report */
};

static struct ticks ticks;

static void on_tick(const struct vs_irq_frame *f)
{
    uint32_t now = vs_now_us();

    (void)f;
    if (!ticks.armed)
        ticks.errors++;
    if (ticks.count == 0) {
        ticks.first_us = now;
    } else {
        int32_t gap = (int32_t)(now - ticks.last_us);

        if (gap < 0) {
            ticks.errors++;
            ticks.backwards_us = (uint32_t)-gap;
        } else if ((uint64_t)gap > ticks.max_gap_us) {
            ticks.max_gap_us = (uint64_t)gap;
        }
    }
    ticks.last_us = now;
    ticks.count++;
}

static int timer_failure(char *err, unsigned errlen, const char *what)
{
    struct vs_buf e;

    vs_buf_init(&e, err, errlen);
    vs_buf_puts(&e, what);
    return -1;
}

/* The devices the workload also serves; without them the ticks still come. */
static void start_devices(void)
{
    char err[128];

    if (vs_rng_start(err, sizeof(err)) < 0 || vs_console_start(err, sizeof(err)) < 0) {
        struct vs_line l;

        vs_line_start(&l);
        vs_line_str(&l, "vmshift-guest: warning: ");
        vs_line_str(&l, err);
        vs_line_end(&l);
    }
}

int vs_timer_start(const struct vs_guest_params *p, char *err, unsigned errlen)
{
    struct vs_line l;
    uint64_t mhz = 0;

    vs_line_start(&l);
    vs_line_str(&l, "vmshift-guest: timer=");
    vs_line_str(&l, vs_params_timer_name(p->timer));
    vs_line_str(&l, " hz=");
    vs_line_dec(&l, p->hz);
    if (p->timer == VS_TIMER_LAPIC) {
        vs_irq_set_handler(VS_VEC_LAPIC_TIMER, on_tick);
        ticks.armed = 1;
        if (vs_lapic_timer_start(VS_VEC_LAPIC_TIMER, p->hz))
            return timer_failure(err, errlen, "the LAPIC timer cannot be calibrated (no clock, "
                                 "or it does not count): use timer=pit");
    } else {
        vs_irq_set_handler(VS_VEC_ISA_BASE + PIT_IRQ, on_tick);
        if (vs_platform_route_isa(PIT_IRQ, VS_VEC_ISA_BASE + PIT_IRQ, err, errlen))
            return -1;
        ticks.armed = 1;
        mhz = vs_pit_periodic(p->hz);
        vs_line_str(&l, " (PIT at ");
        vs_line_dec(&l, mhz / 1000);
        vs_line_str(&l, ".");
        vs_line_dec(&l, mhz % 1000 / 100);
        vs_line_str(&l, " Hz via IOAPIC pin ");
        vs_line_dec(&l, vs_platform_mp()->isa_pin[PIT_IRQ]);
        vs_line_str(&l, ")");
    }
    vs_line_end(&l);
    start_devices();
    return 0;
}

static void report(unsigned cpu, const struct ticks *t)
{
    struct vs_rng_counts rng;
    struct vs_console_counts con;
    struct vs_line l;
    uint32_t span = t->last_us - t->first_us;

    vs_line_start(&l);
    vs_line_str(&l, "cpu");
    vs_line_dec(&l, cpu);
    vs_line_str(&l, " timer: ticks=");
    vs_line_dec(&l, t->count);
    vs_line_str(&l, " in ");
    vs_line_dec(&l, span / 1000);
    vs_line_str(&l, " ms");
    if (span && t->count > 1) {
        vs_line_str(&l, " (");
        vs_line_dec(&l, (t->count - 1) * 1000000ULL / span);
        vs_line_str(&l, "/s)");
    }
    vs_line_str(&l, " max_gap_us=");
    vs_line_dec(&l, t->max_gap_us);
    vs_line_str(&l, " errors=");
    vs_line_dec(&l, t->errors);
    if (t->backwards_us) {
        vs_line_str(&l, " (time went back ");
        vs_line_dec(&l, t->backwards_us);
        vs_line_str(&l, " us)");
    }
    vs_rng_counts(&rng);
    vs_console_counts(&con);
    vs_line_str(&l, " rng=");
    vs_line_dec(&l, rng.requests);
    vs_line_str(&l, "/");
    vs_line_dec(&l, rng.bytes);
    vs_line_str(&l, "B rx=");
    vs_line_dec(&l, con.bytes);
    vs_line_end(&l);
}

/* The timer workload's meaning of vCPU 0's counters (docs/guide.md). */
static void publish(volatile struct vs_cpu_counters *c, const struct ticks *t)
{
    struct vs_rng_counts rng;
    struct vs_console_counts con;

    vs_rng_counts(&rng);
    vs_console_counts(&con);
    c->passes = t->count;
    c->pages_checked = t->count;
    c->pages_written = rng.requests;
    c->rng_bytes = (uint32_t)rng.bytes;
    c->generation = con.bytes;
    c->errors = t->errors + rng.errors + con.errors;
    c->max_gap_us = t->max_gap_us;
}

void vs_timer_run(unsigned cpu)
{
    volatile struct vs_cpu_counters *c = vs_telemetry_cpu(cpu);
    uint64_t reported = 0, seen = 0;
    uint32_t last_bell = vs_now_us();

    vs_telemetry_set_state(cpu, VS_GUEST_RUNNING);
    for (;;) {
        /* sti takes effect after hlt has begun: no tick slips in between. */
        __asm__ volatile("sti; hlt; cli" : : : "memory");
        vs_console_echo(vs_now_us());
        if (ticks.count != seen) {
            seen = ticks.count;
            vs_rng_tick(seen);
        }
        publish(c, &ticks);
        if (vs_now_us() - last_bell >= BELL_US) {
            vs_telemetry_doorbell(cpu);
            last_bell = vs_now_us();
        }
        /* Powers of two, so the console stays quiet over long runs. */
        if (!vs_guest.params.quiet && !(seen & (seen - 1)) && seen != reported) {
            reported = seen;
            report(cpu, &ticks);
        }
    }
}
