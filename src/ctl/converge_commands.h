/* The control-socket side of convergence: measuring a running VM's dirty rate without
 * migrating it (calc-dirty-rate, query-dirty-rate). */
#ifndef VS_CONVERGE_COMMANDS_H
#define VS_CONVERGE_COMMANDS_H

#include <stdbool.h>
#include <stdint.h>
#include "migrate/dirty_rate.h"

struct json_object;

/* Measure for period_ms; refused while a migration runs (it owns dirty logging) and on a
 * VM that has migrated away. */
int converge_measure_dirty_rate(struct vs_vm *vm, bool migrating, uint64_t period_ms,
                                struct vs_dirty_rate *r);

/* Our fields of a measurement: tracking, period-ms, dirty-pages, dirty-pages-rate,
 * dirty-bytes-rate, saturated, working-set, ram, samples[], vcpu-dirty-rate[]. */
void converge_dirty_rate_json(struct vs_vm *vm, const struct vs_dirty_rate *r,
                              struct json_object *out);

#endif
