#include "cli/run_options.h"
#include "cli/guest_path.h"
#include "common/option_error.h"
#include "common/error.h"
#include "common/size.h"
#include "vmm/cpu_model.h"
#include "vmm/dirty_ring.h"
#include "vmm/fill.h"
#include "vmm/virtio/virtio_net_spec.h"
#include "vmshift/page_format.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char run_usage[] =
    "usage: vmshift run [options]\n"
    "  --mem SIZE             guest RAM, e.g. 512M, 4G (default 256M)\n"
    "  --ram-backing B        auto | memfd | anon: what backs guest RAM; auto (default):\n"
    "                         the memfd where shmem gets 2 MiB pages, else anonymous\n"
    "                         memory where that does (docs/perf-notes.md)\n"
    "  --vcpus N              vCPUs, each on its own thread (default 1)\n"
    "  --workload W           idle | once | continuous | verify | timer | disk | net |\n"
    "                         net-stream (default\n"
    "                         idle; timer: vCPU 0 waits for timer interrupts, --append hz=N\n"
    "                         timer=pit|lapic; disk: vCPU 0 writes and checks blocks on the\n"
    "                         first --disk, --append disk_blocks=N (4 KiB, default 256);\n"
    "                         net: vCPU 0 answers ARP, ping and UDP echo on the first --nic\n"
    "                         at --append ip=A.B.C.D (and on the second at ip2=A.B.C.D);\n"
    "                         net-stream: the same, and numbered UDP datagrams at --rate per\n"
    "                         second to --append peer=A.B.C.D:PORT; all four need the pc\n"
    "                         machine)\n"
    "  --range START:SIZE     RAM the workload uses: SIZE bytes of RAM from guest-physical\n"
    "                         START on, skipping the MMIO gap [3G, 4G) (default 4M to end)\n"
    "  --rate PAGES           pages per second the workload writes, 0 = full speed (default 0;\n"
    "                         net-stream: datagrams per second)\n"
    "  --fill KIND            none | pattern | random: host writes RAM from 4M up before boot\n"
    "  --seed N               seed of --fill random and of the verify checksums (default 1)\n"
    "  --preload FILE@ADDR    copy FILE into guest RAM at ADDR before boot (repeatable)\n"
    "  --append ARGS          extra guest parameters (key=value ...), override the above\n"
    "  --kernel ELF           guest kernel (default: $VMSHIFT_GUEST, else the workload guest\n"
    "                         installed with vmshift (PREFIX/lib/vmshift), else the one built\n"
    "                         with it)\n"
    "  --boot MODE            auto | long | pvh (default auto: long if the ELF supports it)\n"
    "  --machine M            pc | flat: pc has the in-kernel PIC, IOAPIC, LAPICs and PIT;\n"
    "                         flat has no interrupt controller (the VMs of vmshift 2.2)\n"
    "                         (default pc)\n"
    "  --serial DEST          stdout | none | FILE for the guest's COM1 (default stdout)\n"
    "  --ctl SOCKET           serve the JSON control protocol on this unix socket\n"
    "  --paused               create the VM but do not run it until 'resume'\n"
    "  --run-for SECONDS      quit after this long (default: until 'quit' or SIGINT)\n"
    "  --keep-after-migrate   once the VM has migrated away, stay (state migrated, its RAM\n"
    "                         given back) until 'quit'; by default the process exits 0\n"
    "                         two seconds after the migration completed\n"
    "  --kvm-device PATH      KVM device (default /dev/kvm)\n"
    "  --cpu MODEL            CPU features the guest sees: host (all KVM offers) or a\n"
    "                         baseline x86-64-v1 | v2 | v3 | v4 that every host of that\n"
    "                         level can take in a migration (default host)\n"
    "  --nic SPEC             a virtio-net NIC on a TAP (repeatable): tap=NAME,mac=MAC\n"
    "                         [,bridge=BR][,ip=A.B.C.D][,vlan=N][,announce-initial=MS]\n"
    "                         [,announce-max=MS][,announce-rounds=N][,announce-step=MS];\n"
    "                         pc machine\n"
    "  --disk SPEC            a virtio-blk disk (repeatable): FILE[,shared][,ro]; FILE may be\n"
    "                         nbd://HOST:PORT/EXPORT or nbd+unix:///EXPORT?socket=PATH, then\n"
    "                         [,reconnect=SECONDS]: a lost connection is made again for that\n"
    "                         long (default 10); pc machine\n"
    "  --dirty-ring ENTRIES   track dirty pages with KVM's per-vCPU dirty ring of ENTRIES\n"
    "                         (power of two, 4096..65536; e.g. 65536) instead of the dirty-log\n"
    "                         bitmap: per-vCPU dirty rates and dirty limits (default off)\n";

enum { OPT_MEM = 256, OPT_VCPUS, OPT_WORKLOAD, OPT_RANGE, OPT_RATE, OPT_FILL, OPT_SEED,
       OPT_PRELOAD, OPT_APPEND, OPT_KERNEL, OPT_BOOT, OPT_SERIAL, OPT_CTL, OPT_PAUSED,
       OPT_RUN_FOR, OPT_KVM_DEVICE, OPT_DIRTY_RING, OPT_MACHINE, OPT_CPU, OPT_NIC, OPT_DISK,
       OPT_RAM_BACKING, OPT_KEEP, OPT_HELP };

static const struct option long_options[] = {
    { "mem", required_argument, NULL, OPT_MEM },
    { "vcpus", required_argument, NULL, OPT_VCPUS },
    { "workload", required_argument, NULL, OPT_WORKLOAD },
    { "range", required_argument, NULL, OPT_RANGE },
    { "rate", required_argument, NULL, OPT_RATE },
    { "fill", required_argument, NULL, OPT_FILL },
    { "seed", required_argument, NULL, OPT_SEED },
    { "preload", required_argument, NULL, OPT_PRELOAD },
    { "append", required_argument, NULL, OPT_APPEND },
    { "kernel", required_argument, NULL, OPT_KERNEL },
    { "boot", required_argument, NULL, OPT_BOOT },
    { "serial", required_argument, NULL, OPT_SERIAL },
    { "ctl", required_argument, NULL, OPT_CTL },
    { "paused", no_argument, NULL, OPT_PAUSED },
    { "run-for", required_argument, NULL, OPT_RUN_FOR },
    { "keep-after-migrate", no_argument, NULL, OPT_KEEP },
    { "kvm-device", required_argument, NULL, OPT_KVM_DEVICE },
    { "dirty-ring", required_argument, NULL, OPT_DIRTY_RING },
    { "machine", required_argument, NULL, OPT_MACHINE },
    { "ram-backing", required_argument, NULL, OPT_RAM_BACKING },
    { "cpu", required_argument, NULL, OPT_CPU },
    { "nic", required_argument, NULL, OPT_NIC },
    { "disk", required_argument, NULL, OPT_DISK },
    { "help", no_argument, NULL, OPT_HELP },
    { NULL, 0, NULL, 0 },
};

static const char *const workloads[] = { "idle", "once", "continuous", "verify", "timer",
                                         "disk", "net", "net-stream" };

static int parse_machine(const char *s, enum vs_machine *out)
{
    if (strcmp(s, "pc") == 0)
        *out = VS_MACHINE_PC;
    else if (strcmp(s, "flat") == 0)
        *out = VS_MACHINE_FLAT;
    else
        return vs_fail(EINVAL, "--machine '%s' is unknown; use pc or flat", s);
    return 0;
}

/* Without --kernel: the workload guest, from the environment, the install or the build. */
static int find_default_kernel(struct run_options *o)
{
    struct guest_search search;
    char self[PATH_MAX];
    guest_search_from_process(&search, self, sizeof(self));
    int rc = guest_path_find(&search, o->kernel_found, sizeof(o->kernel_found));
    if (rc)
        return rc;
    o->vm.kernel = o->kernel_found;
    return 0;
}

static int parse_size_opt(const char *opt, const char *arg, uint64_t *out)
{
    int rc = vs_parse_size(arg, out);
    return rc ? vs_fail_context(rc, "--%s", opt) : 0;
}

static int parse_preload(const char *arg, struct run_options *o)
{
    const char *at = strrchr(arg, '@');
    if (!at || at == arg || !at[1])
        return vs_fail(EINVAL, "--preload '%s' must be FILE@ADDR, e.g. image.bin@0x400000", arg);
    if (o->vm.nr_preloads == VS_MAX_PRELOADS)
        return vs_fail(E2BIG, "more than %d --preload options", VS_MAX_PRELOADS);
    struct vs_preload *p = &o->vm.preloads[o->vm.nr_preloads];
    int rc = vs_parse_size(at + 1, &p->addr);
    if (rc)
        return vs_fail_context(rc, "--preload '%s': bad address", arg);
    if (p->addr < VS_WORK_DEFAULT_START)
        return vs_fail(EINVAL, "--preload '%s' overlaps the boot area [0, 0x%llx); load at "
                       "0x%llx or above", arg, (unsigned long long)VS_WORK_DEFAULT_START,
                       (unsigned long long)VS_WORK_DEFAULT_START);
    char *path = strndup(arg, (size_t)(at - arg));
    if (!path)
        return vs_fail(ENOMEM, "out of memory");
    p->path = path; /* freed by run_options_free */
    o->vm.nr_preloads++;
    return 0;
}

static int parse_range(const char *arg, struct run_options *o)
{
    const char *colon = strchr(arg, ':');
    if (!colon)
        return vs_fail(EINVAL, "--range '%s' must be START:SIZE, e.g. 4M:64M", arg);
    char start[64];
    size_t n = (size_t)(colon - arg);
    if (n >= sizeof(start))
        return vs_fail(EINVAL, "--range '%s': start too long", arg);
    memcpy(start, arg, n);
    start[n] = '\0';
    int rc = vs_parse_size(start, &o->range_start);
    if (!rc)
        rc = vs_parse_size(colon + 1, &o->range_size);
    if (rc)
        return vs_fail_context(rc, "--range '%s'", arg);
    if (o->range_size == 0)
        return vs_fail(EINVAL, "--range '%s' is empty; give a SIZE above 0", arg);
    return 0;
}

/* --mem before anything derived from it (the workload range) is checked. */
static int check_mem(const struct run_options *o)
{
    char given[64], size[32];
    snprintf(given, sizeof(given), "%s", o->mem_text ? o->mem_text : "256M");
    uint64_t mem = o->vm.mem_size, two_mib = 2ULL << 20;
    if (mem < VS_MIN_RAM || mem > VS_MAX_RAM)
        return vs_fail(EINVAL, "--mem %s (%s) is out of range; give between %llu MiB and "
                       "%llu GiB, e.g. --mem 256M", given,
                       vs_format_size(mem, size, sizeof(size)),
                       (unsigned long long)(VS_MIN_RAM >> 20),
                       (unsigned long long)(VS_MAX_RAM >> 30));
    if (mem % two_mib)
        return vs_fail(EINVAL, "--mem %s (%s) is not a multiple of 2 MiB; give e.g. "
                       "--mem %lluM", given, vs_format_size(mem, size, sizeof(size)),
                       (unsigned long long)((mem + two_mib - 1) / two_mib * 2));
    return 0;
}

static int validate(struct run_options *o)
{
    bool known = false;
    for (size_t i = 0; i < sizeof(workloads) / sizeof(workloads[0]); i++)
        known |= strcmp(o->workload, workloads[i]) == 0;
    if (!known)
        return vs_fail(EINVAL, "--workload '%s' is unknown; use idle, once, continuous, verify, "
                       "timer, disk, net or net-stream",
                       o->workload);
    int rc = check_mem(o);
    if (rc)
        return rc;
    if (o->range_start < VS_WORK_DEFAULT_START || o->range_start % VS_PAGE_SIZE ||
        o->range_size % VS_PAGE_SIZE)
        return vs_fail(EINVAL, "--range 0x%llx:0x%llx must be 4 KiB aligned and start at 4M "
                       "(0x%llx) or above", (unsigned long long)o->range_start,
                       (unsigned long long)o->range_size,
                       (unsigned long long)VS_WORK_DEFAULT_START);
    struct vs_ram_layout ram;
    uint64_t off;
    vs_ram_layout_init(&ram, o->vm.mem_size, o->vm.machine == VS_MACHINE_PC);
    if (!vs_ram_gpa_to_offset(&ram, o->range_start, 0, &off) ||
        o->range_size > vs_ram_bytes_from(&ram, o->range_start))
        return vs_fail(EINVAL, "--range 0x%llx:0x%llx does not fit in --mem %llu MiB (RAM "
                       "ends at 0x%llx%s)", (unsigned long long)o->range_start,
                       (unsigned long long)o->range_size,
                       (unsigned long long)(o->vm.mem_size >> 20),
                       (unsigned long long)vs_ram_top(&ram),
                       ram.nr_regions > 1 ? ", with the MMIO gap [3G, 4G) in between" : "");
    if (o->rate > UINT32_MAX)
        return vs_fail(EINVAL, "--rate %llu is too large; at most %u pages/s",
                       (unsigned long long)o->rate, UINT32_MAX);
    if (o->run_for_s < 0)
        return vs_fail(EINVAL, "--run-for %g must not be negative", o->run_for_s);
    return 0;
}

static int parse_all(int argc, char **argv, struct run_options *o);

int run_options_parse(int argc, char **argv, struct run_options *o)
{
    memset(o, 0, sizeof(*o));
    int rc = parse_all(argc, argv, o);
    if (rc)
        run_options_free(o);
    return rc;
}

static int parse_all(int argc, char **argv, struct run_options *o)
{
    o->vm.kvm_device = "/dev/kvm";
    o->vm.kernel = NULL; /* found after the options unless --kernel is given */
    o->vm.boot = VS_BOOT_AUTO;
    o->vm.mem_size = 256ULL << 20;
    o->vm.nr_vcpus = 1;
    o->vm.serial = "stdout";
    o->vm.fill_start = VS_WORK_DEFAULT_START;
    o->vm.seed = 1;
    o->workload = "idle";
    o->range_start = VS_WORK_DEFAULT_START;
    o->append = "";

    struct vs_device_list nics = { 0 }, disks = { 0 };   /* slot order: NICs, then disks */
    struct vs_net_spec nic;
    optind = 1;
    opterr = 0;
    int c, rc = 0;
    uint64_t v;
    char *end;
    while ((c = getopt_long(argc, argv, ":", long_options, NULL)) != -1) {
        switch (c) {
        case OPT_MEM:
            o->mem_text = optarg;
            rc = parse_size_opt("mem", optarg, &o->vm.mem_size);
            break;
        case OPT_VCPUS:
            rc = vs_parse_u64(optarg, &v);
            if (rc || v < 1 || v > VS_MAX_VCPUS)
                return vs_fail(EINVAL, "--vcpus '%s' is out of range; give 1 to %d", optarg,
                               VS_MAX_VCPUS);
            o->vm.nr_vcpus = (unsigned)v;
            break;
        case OPT_WORKLOAD: o->workload = optarg; break;
        case OPT_RANGE: rc = parse_range(optarg, o); break;
        case OPT_RATE:
            rc = vs_parse_u64(optarg, &o->rate);
            if (rc)
                rc = vs_fail_context(rc, "--rate (pages per second)");
            break;
        case OPT_FILL: rc = vs_fill_parse(optarg, &o->vm.fill); break;
        case OPT_SEED:
            rc = vs_parse_u64(optarg, &o->vm.seed);
            if (rc)
                rc = vs_fail_context(rc, "--seed");
            break;
        case OPT_PRELOAD: rc = parse_preload(optarg, o); break;
        case OPT_APPEND: o->append = optarg; break;
        case OPT_KERNEL: o->vm.kernel = optarg; break;
        case OPT_BOOT: rc = vs_boot_parse_mode(optarg, &o->vm.boot); break;
        case OPT_MACHINE: rc = parse_machine(optarg, &o->vm.machine); break;
        case OPT_RAM_BACKING: rc = vs_ram_backing_parse(optarg, &o->vm.ram_backing); break;
        case OPT_CPU: rc = vs_cpu_model_find(optarg, &o->vm.cpu_model); break;
        case OPT_NIC:   /* checked now: a bad field is a usage error, before anything is built */
            rc = vs_net_spec_parse(optarg, &nic);
            if (!rc)
                rc = vs_device_list_add(&nics, VS_DEVICE_NIC, optarg);
            break;
        case OPT_DISK: rc = vs_device_list_add(&disks, VS_DEVICE_DISK, optarg); break;
        case OPT_SERIAL: o->vm.serial = optarg; break;
        case OPT_CTL: o->ctl_path = optarg; break;
        case OPT_PAUSED: o->start_paused = true; break;
        case OPT_KEEP: o->keep_after_migrate = true; break;
        case OPT_RUN_FOR:
            o->run_for_s = strtod(optarg, &end);
            if (end == optarg || *end)
                return vs_fail(EINVAL, "--run-for '%s' is not a number of seconds", optarg);
            break;
        case OPT_KVM_DEVICE: o->vm.kvm_device = optarg; break;
        case OPT_DIRTY_RING:
            if (vs_parse_u64(optarg, &v))
                return vs_fail(EINVAL, "--dirty-ring '%s' is not a number of entries; try 65536",
                               optarg);
            if ((rc = vs_dirty_ring_check_entries(v)))
                return rc;
            o->vm.dirty_ring = (uint32_t)v;
            break;
        case OPT_HELP: o->help = true; return 0;
        default:
            return vs_option_error(c, argv, optind, "vmshift run --help");
        }
        if (rc)
            return rc;
    }
    if (optind < argc)
        return vs_fail(EINVAL, "unexpected argument '%s'; see vmshift run --help", argv[optind]);
    if ((rc = vs_device_list_join(&o->devices, &nics, &disks)))
        return rc;
    o->vm.devices = &o->devices;
    if (o->range_size == 0) {
        struct vs_ram_layout ram;
        vs_ram_layout_init(&ram, o->vm.mem_size, o->vm.machine == VS_MACHINE_PC);
        o->range_size = vs_ram_bytes_from(&ram, o->range_start);
    }
    if ((rc = validate(o)))
        return rc;
    return o->vm.kernel ? 0 : find_default_kernel(o);
}

void run_options_free(struct run_options *o)
{
    for (unsigned i = 0; i < o->vm.nr_preloads; i++)
        free((char *)o->vm.preloads[i].path);
    o->vm.nr_preloads = 0;
}

int run_options_guest_cmdline(const struct run_options *o, char *buf, size_t len)
{
    int n = snprintf(buf, len, "workload=%s start=0x%llx size=0x%llx rate=%llu fill=%s "
                     "seed=%llu cpus=%u%s%s", o->workload, (unsigned long long)o->range_start,
                     (unsigned long long)o->range_size, (unsigned long long)o->rate,
                     vs_fill_name(o->vm.fill), (unsigned long long)o->vm.seed, o->vm.nr_vcpus,
                     o->append[0] ? " " : "", o->append);
    if (n < 0 || (size_t)n >= len)
        return vs_fail(E2BIG, "guest command line would exceed %zu bytes; shorten --append", len);
    return 0;
}
