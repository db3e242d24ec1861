/* The compatibility layer of the old control protocol ({"cmd": NAME, ...fields} ->
 * {"ok": ...}), on the client side only: the server speaks QMP alone. An old command is
 * mapped onto the QMP commands of the same table (status -> vmshift-status, pause -> stop
 * + vmshift-status, migrate to=... -> migrate-set-parameters + migrate-set-capabilities +
 * migrate, migrate-status, dirty-rate, cancel, start-postcopy, resume-migration, ...); a
 * name it does not know is executed as a QMP command with the fields as its arguments.
 * docs/control-protocol.md lists the mapping. */
#ifndef VS_CTL_LEGACY_H
#define VS_CTL_LEGACY_H

struct json_object;
struct ctl_qmp;

/* Run `cmd` with `args` (may be NULL) on the session; *out is the reply in the old shape.
 * Returns < 0 only when the exchange failed. */
int ctl_legacy_run(struct ctl_qmp *q, const char *cmd, struct json_object *args,
                   struct json_object **out);

#endif
