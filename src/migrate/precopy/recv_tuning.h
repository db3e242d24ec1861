/* How the receiver puts pages into guest RAM (`vmshift receive --page-writes`,
 * `--prefault-threads`, `--ram-backing`): the choices and their defaults. Measurements behind them:
 * docs/perf-notes.md. */
#ifndef VS_RECV_TUNING_H
#define VS_RECV_TUNING_H

#include <stdbool.h>
#include "vmm/ram_backing.h"

enum vs_page_writes {
    VS_PAGE_WRITES_AUTO = 0,    /* what measured faster for the page size: see
                                   vs_page_writes_use_file */
    VS_PAGE_WRITES_FILE,        /* pwrite into the RAM memfd at the page's offset */
    VS_PAGE_WRITES_MAPPING,     /* read from the socket straight into the RAM mapping */
};

struct vs_recv_tuning {
    enum vs_page_writes page_writes;
    int prefault_threads;       /* threads faulting RAM in ahead of the stream; -1: default */
    enum vs_ram_backing ram_backing;   /* --ram-backing of the incoming VM's RAM */
};

/* "auto", "file" or "mapping"; an error naming the value otherwise. */
int vs_page_writes_parse(const char *text, enum vs_page_writes *out);
const char *vs_page_writes_name(enum vs_page_writes w);
/* Whether pages go through the file: FILE, or AUTO with 4 KiB pages (huge_pages false).
 * Measured on 1 stream (docs/perf-notes.md): with 4 KiB pages the file saves the
 * kernel's per-page fault and clear_page; with 2 MiB shmem pages a fault per 2 MiB costs
 * little and the mapping's single copy wins (receiver CPU per GB about a third of the
 * file's), so AUTO takes the mapping there. */
bool vs_page_writes_use_file(enum vs_page_writes w, bool huge_pages);
/* The prefault threads for -1 on a host with cpus online CPUs: none below 4 CPUs (the
 * threads would take the streams' CPU), then one per 4 CPUs, at most 4. */
unsigned vs_prefault_threads_default(long cpus);
/* The threads to use: t->prefault_threads, or the default for this host. */
unsigned vs_recv_tuning_prefault_threads(const struct vs_recv_tuning *t);

#endif
