/* Shared by the fuzz targets: making mutated streams pass the checksums (so the fuzzer
 * reaches the checks behind them), and a receiving side without KVM. */
#ifndef VS_FUZZ_COMMON_H
#define VS_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* The first input byte of the stream targets: */
#define FUZZ_FIX_SUMS 1   /* recompute header_sum / payload_sum of every record */
#define FUZZ_FIX_SEQ  2   /* renumber seq 0, 1, 2, ... */
#define FUZZ_SMALL_READS 4    /* the channel returns at most 7 bytes per read */

/* Rewrite the records in buf[0, len) as flags say (a copy the caller owns). Stops at the
 * first header that does not fit. */
void fuzz_fix_records(uint8_t *buf, size_t len, unsigned flags);

/* Log errors only (the targets feed the parsers garbage on purpose). */
void fuzz_quiet(void);
/* A heap copy of exactly size bytes (ASan then sees any read past its end); aborts when
 * out of memory. */
uint8_t *fuzz_copy(const uint8_t *data, size_t size);

/* Guest RAM for the receiving side: FUZZ_RAM bytes, mapped once. */
#define FUZZ_RAM (8ull << 20)   /* the recorded seed migrations are 8 MiB VMs */
uint8_t *fuzz_ram(void);

/* The device-state registry of a machine (descriptions only, for validation): flat
 * (pvport, serial, kvmclock) or pc (the irqchip and PIT too). */
struct vs_vmstate_registry;
const struct vs_vmstate_registry *fuzz_machine_registry(int pc);

#endif
