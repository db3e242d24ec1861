/* A VM's NICs as the control protocol shows them: the "nics" array of the status reply,
 * and the announcement rounds after a move in the destination's migration report. */
#ifndef VS_NIC_STATUS_H
#define VS_NIC_STATUS_H

struct json_object;
struct vs_vm;
struct vs_migration_stats;

/* [{"name", "tap", "bridge", "mac", "ip", "rx_frames", ..., "announces": [...]}] */
struct json_object *vm_nics_status(struct vs_vm *vm);
/* Copy every NIC's announcement rounds into s->announces (replacing what was there). */
void vm_nics_note_announces(struct vs_vm *vm, struct vs_migration_stats *s);

#endif
