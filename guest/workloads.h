/* The workloads (enum vs_workload). Each vCPU works on its own contiguous slice of the
 * range and never returns; in the timer workload vCPU 0 waits for ticks (timer.h), in the
 * disk workload it works on the disk (disk.h), and the others run verify on their slices. */
#ifndef VS_GUEST_WORKLOADS_H
#define VS_GUEST_WORKLOADS_H

void vs_workload_run(unsigned cpu) __attribute__((noreturn));

#endif
