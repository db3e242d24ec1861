/* VMs a previous vmshiftd left running. By default a VM monitor outlives a crashed
 * daemon; when a daemon starts on the same --state-dir, every STATE_DIR/NAME/ctl.sock that
 * answers is adopted: its monitor's pid from the socket's peer credentials, its RAM, vCPUs
 * and origin from its status. An adopted monitor is not the daemon's child, so its end is
 * noticed by polling (its exit status is unknown). */
#ifndef VS_HOST_ADOPT_H
#define VS_HOST_ADOPT_H

#include <stdbool.h>

struct host_daemon;
struct host_vm;

/* Adopt what answers in the state directory; returns how many VMs were adopted. */
unsigned host_adopt_orphans(struct host_daemon *d);
/* For an adopted live entry: has its monitor exited? If so the entry is ended. */
bool host_adopted_gone(struct host_vm *vm);

#endif
