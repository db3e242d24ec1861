#include "rate.h"
#include "guest.h"
#include "pvport.h"
#include "timing.h"

/* Budget periods restart every second, so a stall (a paused VM, a clock that jumps
 * after migration) never turns into a long catch-up burst. */
#define PERIOD_US    1000000u
/* Being ahead by less than this is not worth a stall. */
#define SLACK_US     200u
/* Stall in pieces, so a new rate from the monitor takes effect within this. */
#define MAX_STALL_US 100000u

/* The VM-wide rate: the monitor's live override when there is one, else the boot value. */
static uint64_t wanted_vm_rate(void)
{
    if (vs_guest.pvport) {
        uint32_t o = vs_pvport_rate();

        if (o != VS_RATE_NO_OVERRIDE)
            return o;
    }
    return vs_guest.params.rate;
}

static void restart(struct vs_rate *r)
{
    r->period_start = vs_now_us();
    r->done = 0;
}

static void set_vm_rate(struct vs_rate *r, uint64_t vm_rate)
{
    r->vm_rate = vm_rate;
    /* The remainder goes to the lowest vCPUs so the shares add up to vm_rate. */
    r->target = vm_rate / r->cpus + (r->cpu < vm_rate % r->cpus);
    restart(r);
}

void vs_rate_init(struct vs_rate *r, unsigned cpu, unsigned cpus)
{
    r->cpu = cpu;
    r->cpus = cpus;
    set_vm_rate(r, wanted_vm_rate());
}

/* About 10 ms of work per chunk at low rates, so dirtying is spread out, not bursty. */
static unsigned chunk_pages(uint64_t target)
{
    uint64_t n = target / 100;

    if (n < 1)
        return 1;
    return n > VS_CHUNK_PAGES ? VS_CHUNK_PAGES : (unsigned)n;
}

unsigned vs_rate_gate(struct vs_rate *r)
{
    for (;;) {
        uint64_t want = wanted_vm_rate();
        uint32_t stall;

        if (want != r->vm_rate)
            set_vm_rate(r, want);
        if (!r->vm_rate || !vs_timing_usable())
            return VS_CHUNK_PAGES;
        if (r->target) {
            uint32_t elapsed = vs_now_us() - r->period_start;
            uint64_t due = r->done * 1000000 / r->target;

            if (due <= (uint64_t)elapsed + SLACK_US) {
                if (elapsed >= PERIOD_US)
                    restart(r);
                return chunk_pages(r->target);
            }
            stall = due - elapsed > MAX_STALL_US ? MAX_STALL_US : (uint32_t)(due - elapsed);
        } else {
            /* The VM rate is below the number of vCPUs and this one's share is 0. */
            stall = MAX_STALL_US;
        }
        vs_sleep_us(stall);
    }
}
