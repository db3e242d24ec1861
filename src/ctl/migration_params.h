/* The migration parameters, each defined once: its QMP name (dashes, QEMU's name where
 * QEMU has the same thing, "x-" for ours), the command-line option of `vmshift migrate`
 * and `vmshift evacuate`, type, unit, default, range and help. From this table come the
 * CLI options, the monitor's checks (migrate-set-parameters, migrate-set-capabilities),
 * query-migrate-parameters, the planner's options and the table in
 * docs/control-protocol.md (checked by a unit test).
 *
 * Values live in a JSON object keyed by QMP name (a "parameter set"); mp_to_opts turns a
 * set into the options of a migration. */
#ifndef VS_MIGRATION_PARAMS_H
#define VS_MIGRATION_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_object;
struct vs_migration_opts;
struct option;

enum mp_type {
    MP_UINT,     /* a whole number in `unit` */
    MP_SIZE,     /* a whole number of bytes (per second); the CLI takes suffixes: 100M */
    MP_BOOL,
    MP_ENUM,     /* one of `values` */
    MP_STRING,
    MP_PATH,     /* a file the VM's monitor reads; the CLI makes it absolute */
    MP_MS_LIST,  /* milliseconds, increasing: [500, 1000] or "500,1000" */
};

enum mp_kind { MP_PARAMETER, MP_CAPABILITY };

struct mp_def {
    const char *name;        /* QMP name */
    const char *cli;         /* option of vmshift migrate / evacuate, without "--" */
    enum mp_type type;
    enum mp_kind kind;
    const char *unit;        /* "ms", "bytes/s", ... ("" when none) */
    const char *def;         /* default, as text */
    uint64_t min, max;       /* MP_UINT, MP_SIZE; MP_STRING, MP_PATH: max length */
    const char *values;      /* MP_ENUM: "none,lz4,zstd,auto" */
    bool plan;               /* also an input of `vmshift plan` */
    const char *help;
    /* Put a checked value into the options of a migration. */
    int (*apply)(struct vs_migration_opts *o, struct json_object *v);
};

extern const struct mp_def mp_defs[];
extern const size_t mp_count;

/* By QMP name; by CLI name ('_' may stand for '-'), as the old control protocol spelled
 * them. NULL when absent. */
const struct mp_def *mp_find(const char *name);
const struct mp_def *mp_find_cli(const char *cli);

/* Does d choose how the migration is secured (x-tls-psk, x-tls-cert, x-tls-key, x-tls-ca,
 * tls-hostname, x-insecure)? x-ktls does not: it only says who encrypts. */
bool mp_is_security(const struct mp_def *d);

/* A new parameter set holding every parameter and capability at its default. */
struct json_object *mp_defaults(void);

/* Check `value` (JSON) for `d` and store it, normalised, in `set` under d->name. An
 * error names the parameter, the value and what it accepts. */
int mp_set(struct json_object *set, const struct mp_def *d, struct json_object *value);

/* Parse command-line text for `d` (NULL for a flag: true) into a new JSON value, checked
 * like mp_set. MP_PATH values become absolute paths. */
int mp_parse_text(const struct mp_def *d, const char *text, struct json_object **out);

/* Put the values of a parameter set (plan_only: only the planner's) into o. */
int mp_apply(struct json_object *set, struct vs_migration_opts *o, bool plan_only);

/* The options of a migration from a parameter set (fields absent from the set keep
 * their defaults); checks the security combination. `to` is not touched. */
int mp_to_opts(struct json_object *set, struct vs_migration_opts *o);

/* getopt_long entries for every definition (plan_only: only those with `plan`), each with
 * val = first_val + index into mp_defs. Writes at most max entries; returns the count. */
size_t mp_getopt_options(struct option *out, size_t max, int first_val, bool plan_only);

/* The usage lines of the options ("  --downtime-limit MS ..."), into buf. */
void mp_usage(char *buf, size_t len, bool plan_only);
/* The same without the definitions `skip` says (NULL: none). */
void mp_usage_except(char *buf, size_t len, bool (*skip)(const struct mp_def *d));

/* The Markdown table of docs/control-protocol.md (malloc'd). */
char *mp_docs_table(void);

#endif
