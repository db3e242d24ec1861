/* The QMP migration commands of a VM's monitor (migrate, query-migrate, the parameters
 * and capabilities, post-copy, dirty rate and dirty limits) and the events that follow a
 * migration (MIGRATION, MIGRATION_PASS). Handlers take a struct vm_commands as ctx; the
 * table lives in vm_commands.c. */
#ifndef VS_MIGRATION_COMMANDS_H
#define VS_MIGRATION_COMMANDS_H

#include <stdbool.h>

struct json_object;
struct vm_commands;

int qmp_migrate(void *ctx, struct json_object *args, struct json_object **ret);
int qmp_migrate_incoming(void *ctx, struct json_object *args, struct json_object **ret);
int qmp_query_migrate(void *ctx, struct json_object *args, struct json_object **ret);
int qmp_migrate_set_parameters(void *ctx, struct json_object *args, struct json_object **ret);
int qmp_query_migrate_parameters(void *ctx, struct json_object *args, struct json_object **ret);
int qmp_migrate_set_capabilities(void *ctx, struct json_object *args, struct json_object **ret);
int qmp_query_migrate_capabilities(void *ctx, struct json_object *args,
                                   struct json_object **ret);
int qmp_migrate_cancel(void *ctx, struct json_object *args, struct json_object **ret);
int qmp_migrate_start_postcopy(void *ctx, struct json_object *args, struct json_object **ret);
int qmp_migrate_pause(void *ctx, struct json_object *args, struct json_object **ret);
int qmp_migrate_recover(void *ctx, struct json_object *args, struct json_object **ret);
int qmp_calc_dirty_rate(void *ctx, struct json_object *args, struct json_object **ret);
int qmp_query_dirty_rate(void *ctx, struct json_object *args, struct json_object **ret);
int qmp_set_vcpu_dirty_limit(void *ctx, struct json_object *args, struct json_object **ret);
int qmp_cancel_vcpu_dirty_limit(void *ctx, struct json_object *args, struct json_object **ret);
int qmp_query_vcpu_dirty_limit(void *ctx, struct json_object *args, struct json_object **ret);

/* Send MIGRATION and MIGRATION_PASS events for what changed since the last call. */
void migration_watch(struct vm_commands *c);
/* Whether an outgoing migration runs now. */
bool migration_running(struct vm_commands *c);
/* The parameter set (created at its defaults on first use; NULL when out of memory). */
struct json_object *migration_params(struct vm_commands *c);

#endif
