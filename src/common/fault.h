/* Deterministic fault injection for the fault suite (tests/integration/test_faults_*.c).
 *
 *   VMSHIFT_FAULT="POINT:N:ACTION[,POINT:N:ACTION...]"
 *
 * POINT names a place in the engine (vs_fault_point calls, listed in
 * docs/state-machine.md), N the occurrence there (a pass number, or 0; * for any), and
 * ACTION what happens when it is reached:
 *   kill        SIGKILL this process
 *   cut         shut the connection given at that point down (both directions)
 *   stall[=MS]  stop this thread for MS milliseconds (default 5000)
 * Each rule fires once. Every firing is logged to stderr as "fault injected: POINT N
 * ACTION" before it acts, so a test can tell that its fault was reached. Without the
 * variable a fault point costs one branch. */
#ifndef VS_FAULT_H
#define VS_FAULT_H

#include <stdint.h>

struct vs_channel;

void vs_fault_point(const char *point, uint64_t n, struct vs_channel *ch);

#endif
