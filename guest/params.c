/* Command-line parsing for the guest. No libc: this runs before anything else in the
 * guest, and the hosted unit test compiles the very same file. */
#include "params.h"
#include "fmt.h"
#include "vmshift/page_format.h"

#define PAGE_MASK (VS_PAGE_SIZE - 1)

_Static_assert(VS_WORK_MIN_START == 0x280000, "the start= error message names this address");

static const char *const workload_names[] = { "idle", "once", "continuous", "verify", "timer",
                                              "disk", "net", "net-stream" };
static const char *const fill_names[] = { "none", "pattern", "random" };
static const char *const timer_names[] = { "pit", "lapic" };
#define NR_WORKLOADS (sizeof(workload_names) / sizeof(workload_names[0]))
#define NR_FILLS (sizeof(fill_names) / sizeof(fill_names[0]))
#define NR_TIMERS (sizeof(timer_names) / sizeof(timer_names[0]))
_Static_assert(NR_WORKLOADS == VS_WORKLOAD_NET_STREAM + 1, "a name for every workload");

const char *vs_params_workload_name(uint32_t workload)
{
    return workload < NR_WORKLOADS ? workload_names[workload] : "?";
}

const char *vs_params_fill_name(uint32_t fill)
{
    return fill < NR_FILLS ? fill_names[fill] : "?";
}

const char *vs_params_timer_name(uint32_t timer)
{
    return timer < NR_TIMERS ? timer_names[timer] : "?";
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* s[0..n) equals the NUL-terminated lit. */
static int equals(const char *s, unsigned n, const char *lit)
{
    unsigned i = 0;

    for (; i < n; i++)
        if (lit[i] != s[i])
            return 0;
    return lit[i] == '\0';
}

static int lookup(const char *const *names, unsigned count, const char *v, unsigned n,
                  uint32_t *out)
{
    for (unsigned i = 0; i < count; i++) {
        if (equals(v, n, names[i])) {
            *out = i;
            return 0;
        }
    }
    return -1;
}

/* Decimal or 0x-hex; with_suffix also accepts a trailing K, M or G (binary). */
static int parse_u64(const char *s, unsigned n, int with_suffix, uint64_t *out)
{
    uint64_t v = 0, base = 10;
    unsigned i = 0, shift = 0;

    if (with_suffix && n > 0) {
        switch (s[n - 1]) {
        case 'K': case 'k': shift = 10; break;
        case 'M': case 'm': shift = 20; break;
        case 'G': case 'g': shift = 30; break;
        }
        if (shift)
            n--;
    }
    if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        i = 2;
    }
    if (i >= n)
        return -1;
    for (; i < n; i++) {
        char c = s[i];
        uint64_t d;

        if (c >= '0' && c <= '9')
            d = (uint64_t)(c - '0');
        else if (base == 16 && c >= 'a' && c <= 'f')
            d = (uint64_t)(c - 'a' + 10);
        else if (base == 16 && c >= 'A' && c <= 'F')
            d = (uint64_t)(c - 'A' + 10);
        else
            return -1;
        if (v > (UINT64_MAX - d) / base)
            return -1;
        v = v * base + d;
    }
    if (v > (UINT64_MAX >> shift))
        return -1;
    *out = v << shift;
    return 0;
}

static int bad_value(struct vs_buf *e, const char *key, unsigned keylen, const char *v,
                     unsigned n, const char *why)
{
    vs_buf_puts(e, "bad value for ");
    vs_buf_putn(e, key, keylen);
    vs_buf_puts(e, ": '");
    vs_buf_putn(e, v, n);
    vs_buf_puts(e, "' (");
    vs_buf_puts(e, why);
    vs_buf_putc(e, ')');
    return -1;
}

static void warn(struct vs_guest_params *p, const char *tok, unsigned len)
{
    if (p->nr_warnings < VS_PARAMS_MAX_WARNINGS) {
        p->warnings[p->nr_warnings].token = tok;
        p->warnings[p->nr_warnings].len = len;
    }
    p->nr_warnings++;
}

/* Index of the first c in s[0..n), or n. */
static unsigned find_char(const char *s, unsigned n, char c)
{
    unsigned i = 0;

    while (i < n && s[i] != c)
        i++;
    return i;
}

/* SIZE@BASE:IRQ[:ID] (Linux's virtio_mmio.device=): SIZE with an optional K/M/G suffix,
 * BASE a decimal or 0x-hex address, IRQ a number; the platform device ID is ignored. */
static int parse_virtio_slot(const char *v, unsigned n, struct vs_virtio_mmio_slot *out)
{
    unsigned at = find_char(v, n, '@'), colon, end;
    uint64_t irq, id;

    if (at == n || parse_u64(v, at, 1, &out->size) || out->size == 0)
        return -1;
    v += at + 1;
    n -= at + 1;
    colon = find_char(v, n, ':');
    if (colon == n || parse_u64(v, colon, 0, &out->base))
        return -1;
    v += colon + 1;
    n -= colon + 1;
    end = find_char(v, n, ':');
    if (parse_u64(v, end, 0, &irq) || irq > 255)
        return -1;
    if (end < n && parse_u64(v + end + 1, n - end - 1, 0, &id))
        return -1;
    out->irq = (uint32_t)irq;
    return out->base + out->size < out->base ? -1 : 0;
}

/* A.B.C.D:PORT, the port 1-65535. */
static int parse_ipv4(const char *v, unsigned n, uint8_t ip[4]);
static int parse_endpoint(const char *v, unsigned n, uint8_t ip[4], uint16_t *port)
{
    unsigned colon = find_char(v, n, ':');
    uint64_t x;

    if (colon == n || parse_ipv4(v, colon, ip) || parse_u64(v + colon + 1, n - colon - 1, 0, &x) ||
        x == 0 || x > 65535)
        return -1;
    *port = (uint16_t)x;
    return 0;
}

/* A.B.C.D, each part 0-255 in decimal. */
static int parse_ipv4(const char *v, unsigned n, uint8_t ip[4])
{
    unsigned part = 0, i = 0;

    for (; part < 4; part++) {
        unsigned end = i + find_char(v + i, n - i, '.');
        uint64_t x;

        if ((part < 3) != (end < n) || end == i || end - i > 3 ||
            parse_u64(v + i, end - i, 0, &x) || x > 255 || (v[i] == '0' && end - i > 1 &&
                                                            (v[i + 1] == 'x' || v[i + 1] == 'X')))
            return -1;
        ip[part] = (uint8_t)x;
        i = end + 1;
    }
    return 0;
}

static int parse_token(struct vs_guest_params *p, const char *tok, unsigned len,
                       struct vs_buf *e)
{
    unsigned k = 0;
    uint64_t x;

    while (k < len && tok[k] != '=')
        k++;
    if (k == len) {
        warn(p, tok, len);
        return 0;
    }
    const char *v = tok + k + 1;
    unsigned n = len - k - 1;

    if (equals(tok, k, "workload")) {
        if (lookup(workload_names, NR_WORKLOADS, v, n, &p->workload))
            return bad_value(e, tok, k, v, n, "idle, once, continuous, verify, timer, disk, net or "
                             "net-stream");
    } else if (equals(tok, k, "fill")) {
        if (lookup(fill_names, NR_FILLS, v, n, &p->fill))
            return bad_value(e, tok, k, v, n, "none, pattern or random");
    } else if (equals(tok, k, "start")) {
        if (parse_u64(v, n, 1, &x))
            return bad_value(e, tok, k, v, n, "a byte address");
        if (x & PAGE_MASK)
            return bad_value(e, tok, k, v, n, "not 4 KiB aligned");
        if (x < VS_WORK_MIN_START)
            return bad_value(e, tok, k, v, n, "below the boot stacks' end at 0x280000");
        p->start = x;
    } else if (equals(tok, k, "size")) {
        if (parse_u64(v, n, 1, &x))
            return bad_value(e, tok, k, v, n, "a byte count");
        if (x == 0 || (x & PAGE_MASK))
            return bad_value(e, tok, k, v, n, "must be a non-zero multiple of 4 KiB");
        p->size = x;
    } else if (equals(tok, k, "mem")) {
        if (parse_u64(v, n, 1, &x) || x == 0)
            return bad_value(e, tok, k, v, n, "a non-zero byte count");
        p->mem = x;
    } else if (equals(tok, k, "rate")) {
        if (parse_u64(v, n, 0, &p->rate))
            return bad_value(e, tok, k, v, n, "pages per second, 0 = full speed");
    } else if (equals(tok, k, "seed")) {
        if (parse_u64(v, n, 0, &p->seed))
            return bad_value(e, tok, k, v, n, "a number");
    } else if (equals(tok, k, "cpus")) {
        if (parse_u64(v, n, 0, &x) || x == 0)
            return bad_value(e, tok, k, v, n, "a vCPU count of at least 1");
        p->cpus = x > VS_MAX_VCPUS ? VS_MAX_VCPUS : (uint32_t)x;
    } else if (equals(tok, k, "hz")) {
        if (parse_u64(v, n, 0, &x) || x == 0 || x > VS_HZ_MAX)
            return bad_value(e, tok, k, v, n, "timer interrupts per second, 1 to 1000");
        p->hz = (uint32_t)x;
    } else if (equals(tok, k, "timer")) {
        if (lookup(timer_names, NR_TIMERS, v, n, &p->timer))
            return bad_value(e, tok, k, v, n, "pit or lapic");
    } else if (equals(tok, k, "virtio_mmio.device")) {
        if (p->nr_virtio == VS_VIRTIO_MMIO_MAX)
            return bad_value(e, tok, k, v, n, "more than 8 virtio_mmio.device= slots");
        if (parse_virtio_slot(v, n, &p->virtio[p->nr_virtio]))
            return bad_value(e, tok, k, v, n, "SIZE@BASE:IRQ, e.g. 512@0xfeb00000:12");
        p->nr_virtio++;
    } else if (equals(tok, k, "disk_blocks")) {
        if (parse_u64(v, n, 0, &p->disk_blocks) || p->disk_blocks == 0)
            return bad_value(e, tok, k, v, n, "4 KiB blocks of the disk the workload uses, at "
                             "least 1");
    } else if (equals(tok, k, "ip")) {
        if (parse_ipv4(v, n, p->ip))
            return bad_value(e, tok, k, v, n, "an IPv4 address, e.g. 198.18.0.10");
        p->has_ip = 1;
    } else if (equals(tok, k, "ip2")) {
        if (parse_ipv4(v, n, p->ip2))
            return bad_value(e, tok, k, v, n, "an IPv4 address, e.g. 198.18.2.10");
        p->has_ip2 = 1;
    } else if (equals(tok, k, "peer")) {
        if (parse_endpoint(v, n, p->peer_ip, &p->peer_port))
            return bad_value(e, tok, k, v, n, "an IPv4 address and a UDP port, e.g. "
                             "198.18.0.100:9000");
        p->has_peer = 1;
    } else if (equals(tok, k, "quiet")) {
        if (parse_u64(v, n, 0, &x))
            return bad_value(e, tok, k, v, n, "0 or 1");
        p->quiet = x != 0;
    } else {
        warn(p, tok, len);
    }
    return 0;
}

int vs_params_parse(const char *cmdline, struct vs_guest_params *out, char *err,
                    unsigned errlen)
{
    struct vs_buf e;
    struct vs_guest_params p = {
        .workload = VS_WORKLOAD_IDLE,
        .fill = VS_FILL_NONE,
        .start = VS_WORK_DEFAULT_START,
        .seed = 1,
        .cpus = 1,
        .hz = VS_HZ_DEFAULT,
        .timer = VS_TIMER_PIT,
    };
    unsigned i = 0;

    vs_buf_init(&e, err, errlen);
    if (!cmdline)
        cmdline = "";
    /* Bounded: the loader's buffer holds at most VS_BOOT_CMDLINE_MAX bytes. */
    while (i < VS_BOOT_CMDLINE_MAX && cmdline[i]) {
        unsigned begin;

        if (is_space(cmdline[i])) {
            i++;
            continue;
        }
        begin = i;
        while (i < VS_BOOT_CMDLINE_MAX && cmdline[i] && !is_space(cmdline[i]))
            i++;
        if (parse_token(&p, cmdline + begin, i - begin, &e))
            return -1;
    }
    if (p.size > UINT64_MAX - p.start) {
        vs_buf_puts(&e, "start + size overflows");
        return -1;
    }
    if (p.timer == VS_TIMER_PIT && p.hz < VS_HZ_PIT_MIN) {
        vs_buf_puts(&e, "hz=");
        vs_buf_dec(&e, p.hz);
        vs_buf_puts(&e, " is below the PIT's slowest rate (19 Hz): use timer=lapic");
        return -1;
    }
    *out = p;
    return 0;
}

/* End of the run of RAM, merged across adjacent or overlapping RAM entries, that
 * contains addr. -1 if addr is not in RAM. */
static int ram_run_end(const struct hvm_memmap_table_entry *map, uint32_t entries,
                       uint64_t addr, uint64_t *end)
{
    uint64_t cur = addr;
    int found = 0;

    /* Each round extends the run by at least one entry, so entries + 1 rounds suffice. */
    for (uint32_t round = 0; round <= entries; round++) {
        int grew = 0;

        for (uint32_t i = 0; i < entries; i++) {
            const struct hvm_memmap_table_entry *m = &map[i];
            uint64_t m_end = m->size > UINT64_MAX - m->addr ? UINT64_MAX : m->addr + m->size;

            if (m->type == VS_E820_RAM && m->addr <= cur && cur < m_end) {
                cur = m_end;
                grew = found = 1;
            }
        }
        if (!grew)
            break;
    }
    *end = cur;
    return found ? 0 : -1;
}

/* The lowest start of a RAM entry at or above addr; -1 if there is none. */
static int next_ram_start(const struct hvm_memmap_table_entry *map, uint32_t entries,
                          uint64_t addr, uint64_t *start)
{
    int found = 0;

    for (uint32_t i = 0; i < entries; i++) {
        const struct hvm_memmap_table_entry *m = &map[i];

        if (m->type == VS_E820_RAM && m->size && m->addr >= addr && (!found || m->addr < *start)) {
            *start = m->addr;
            found = 1;
        }
    }
    return found ? 0 : -1;
}

static int add_extent(struct vs_guest_params *p, uint64_t start, uint64_t bytes,
                      struct vs_buf *e)
{
    if (p->nr_extents == VS_RANGE_MAX_EXTENTS) {
        vs_buf_puts(e, "the range spans more than ");
        vs_buf_dec(e, VS_RANGE_MAX_EXTENTS);
        vs_buf_puts(e, " pieces of RAM; give a smaller size=");
        return -1;
    }
    p->extents[p->nr_extents].start = start;
    p->extents[p->nr_extents].pages = bytes / VS_PAGE_SIZE;
    p->nr_extents++;
    return 0;
}

static void range_not_in_ram(const struct vs_guest_params *p, uint64_t ram_end, struct vs_buf *e)
{
    vs_buf_puts(e, "range ");
    vs_buf_hex(e, p->start);
    vs_buf_putc(e, '+');
    vs_buf_hex(e, p->size);
    vs_buf_puts(e, " is not inside RAM, which ends at ");
    vs_buf_hex(e, ram_end);
}

/* Walk the RAM runs from p->start on, taking p->size bytes (all if 0) as extents.
 * *taken = bytes laid out, *ram_end = end of the last run seen. */
static int lay_out(struct vs_guest_params *p, const struct hvm_memmap_table_entry *map,
                   uint32_t entries, uint64_t *taken, uint64_t *ram_end, struct vs_buf *e)
{
    uint64_t cur = p->start, want = p->size;

    *taken = 0;
    /* Every round consumes at least one RAM entry (the next start lies beyond the run). */
    for (uint32_t round = 0; round <= entries; round++) {
        uint64_t end, next = 0;

        if (ram_run_end(map, entries, cur, &end) == 0) {
            *ram_end = end;
            uint64_t aligned = end & ~PAGE_MASK;
            if (aligned > cur) {
                uint64_t take = aligned - cur;

                if (want && take > want - *taken)
                    take = want - *taken;
                if (add_extent(p, cur, take, e))
                    return -1;
                *taken += take;
            }
        } else if (round == 0) {
            vs_buf_puts(e, "start=");
            vs_buf_hex(e, p->start);
            vs_buf_puts(e, " is not in RAM");
            return -1;
        } else {
            end = cur; /* a RAM entry too small to hold an aligned page */
        }
        if ((want && *taken == want) || end == UINT64_MAX ||
            next_ram_start(map, entries, end == cur ? end + 1 : end, &next))
            return 0;
        if (next > UINT64_MAX - PAGE_MASK)
            return 0;
        cur = (next + PAGE_MASK) & ~PAGE_MASK;
    }
    return 0;
}

int vs_params_resolve_range(struct vs_guest_params *p, const struct hvm_memmap_table_entry *map,
                            uint32_t entries, char *err, unsigned errlen)
{
    struct vs_buf e;
    uint64_t ram_end = 0, taken;

    vs_buf_init(&e, err, errlen);
    p->nr_extents = 0;
    if (entries > VS_MEMMAP_MAX) {
        vs_buf_puts(&e, "memory map has too many entries: ");
        vs_buf_dec(&e, entries);
        return -1;
    }
    if (entries == 0) {
        const struct hvm_memmap_table_entry whole = { .addr = 0, .size = p->mem,
                                                      .type = VS_E820_RAM };

        if (!p->mem) {
            vs_buf_puts(&e, "no memory map from the loader: pass mem=BYTES");
            return -1;
        }
        if (p->start >= p->mem) {
            vs_buf_puts(&e, "no RAM above start=");
            vs_buf_hex(&e, p->start);
            return -1;
        }
        if (lay_out(p, &whole, 1, &taken, &ram_end, &e))
            return -1;
    } else if (lay_out(p, map, entries, &taken, &ram_end, &e)) {
        return -1;
    }
    if (!p->size) {
        if (!taken) {
            vs_buf_puts(&e, "no RAM above start=");
            vs_buf_hex(&e, p->start);
            return -1;
        }
        p->size = taken;
    }
    if (taken < p->size) {
        range_not_in_ram(p, ram_end & ~PAGE_MASK, &e);
        return -1;
    }
    if (p->size / VS_PAGE_SIZE < p->cpus) {
        vs_buf_puts(&e, "range has fewer pages than cpus=");
        vs_buf_dec(&e, p->cpus);
        return -1;
    }
    return 0;
}

uint64_t vs_params_page_addr(const struct vs_guest_params *p, uint64_t index, uint64_t *run)
{
    for (uint32_t i = 0; i < p->nr_extents; i++) {
        const struct vs_range_extent *x = &p->extents[i];

        if (index < x->pages) {
            *run = x->pages - index;
            return x->start + index * VS_PAGE_SIZE;
        }
        index -= x->pages;
    }
    *run = 0;
    return 0;
}

uint64_t vs_params_range_end(const struct vs_guest_params *p)
{
    if (!p->nr_extents)
        return p->start;
    const struct vs_range_extent *x = &p->extents[p->nr_extents - 1];
    return x->start + x->pages * VS_PAGE_SIZE;
}
