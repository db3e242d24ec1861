/* The control-socket side of convergence: the convergence fields of a `migrate` request
 * (converge, downtime_schedule, max_downtime) and the `dirty-rate` command, which
 * measures a running VM's dirty rate without migrating it. */
#ifndef VS_CONVERGE_COMMANDS_H
#define VS_CONVERGE_COMMANDS_H

#include <stdbool.h>
#include "migrate/source.h"

struct json_object;

/* converge=none|throttle|postcopy, downtime_schedule="500,1000" (or an array of ms),
 * max_downtime=MS of a migrate request into o (absent fields keep their defaults). */
int converge_migrate_opts(struct json_object *req, struct vs_migration_opts *o);

/* dirty-rate [period_ms=1000]: refused while a migration runs (it owns dirty logging). */
int converge_cmd_dirty_rate(struct vs_vm *vm, bool migrating, struct json_object *req,
                            struct json_object *reply);

#endif
