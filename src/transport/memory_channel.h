/* A channel over a byte buffer in memory: reads return the buffer's bytes, then EOF;
 * writes are counted and dropped. It lets the migration engine's receiving code run on
 * canned input (the fuzz harness, replays of recorded streams) without a socket. */
#ifndef VS_MEMORY_CHANNEL_H
#define VS_MEMORY_CHANNEL_H

#include <stddef.h>
#include <stdint.h>
#include "transport/channel.h"

/* data must stay valid until the channel is closed. max_read > 0 caps each read (to
 * exercise partial reads); 0 = no cap. */
int vs_channel_from_memory(const uint8_t *data, size_t len, size_t max_read,
                           struct vs_channel **out);

#endif
