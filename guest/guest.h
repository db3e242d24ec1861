/* State shared by all vCPUs. vCPU 0 writes it before it publishes VS_INIT_DONE in
 * vs_init_state; afterwards it is read-only. */
#ifndef VS_GUEST_GUEST_H
#define VS_GUEST_GUEST_H

#include "params.h"

struct vs_guest {
    struct vs_guest_params params;  /* range resolved against RAM */
    int pvport;                     /* the vmshift paravirtual port answered */
};

extern struct vs_guest vs_guest;

#endif
