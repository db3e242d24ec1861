/* Small JSON helpers shared by the control server, its handlers and the CLI.
 *
 * All getters return 0 on success, -ENOENT if the key is absent (so callers can treat
 * a field as optional by checking for -ENOENT), or -EINVAL if the value has the wrong
 * type or is malformed; on failure vs_last_error() names the key and the value. */
#ifndef VS_CTL_JSON_H
#define VS_CTL_JSON_H

#include <stdbool.h>
#include <stdint.h>

struct json_object;

/* A non-negative JSON integer, or a string holding a size or number as accepted by
 * vs_parse_size() ("4G", "512M", "0x1000", "4096"). Doubles, negatives, booleans and
 * other types are rejected. */
int ctl_json_get_u64(struct json_object *o, const char *key, uint64_t *out);
/* A JSON string. *out points into `o` and lives as long as `o` does. */
int ctl_json_get_string(struct json_object *o, const char *key, const char **out);
/* A JSON boolean (true/false only; numbers and strings are rejected). */
int ctl_json_get_bool(struct json_object *o, const char *key, bool *out);

/* Turn CLI tokens "key=value" into a new JSON object (*out, caller json_object_put()s).
 * The value becomes a JSON integer if it is a plain decimal number ("42", "-7") that fits
 * in 64 bits, a boolean for "true"/"false", and a string otherwise ("4G", "0x10", "",
 * "a=b" for the token "k=a=b"). Errors (no '=', empty key, repeated key) name the token. */
int ctl_json_parse_args(int argc, char **argv, struct json_object **out);

/* Single-line serialisation used on the wire (no spaces, "/" not escaped). The string
 * is owned by `o`. */
const char *ctl_json_line(struct json_object *o);

#endif
