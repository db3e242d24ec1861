/* The four workloads (enum vs_workload). Each vCPU works on its own contiguous slice of
 * the range and never returns. */
#ifndef VS_GUEST_WORKLOADS_H
#define VS_GUEST_WORKLOADS_H

void vs_workload_run(unsigned cpu) __attribute__((noreturn));

#endif
