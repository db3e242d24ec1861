/* A TCP proxy for the fault suite: listens on 127.0.0.1, forwards every connection to a
 * target port, and applies one byte-level fault to the first connection (stream 0 of a
 * migration): cut it, corrupt one byte, or stall one direction, at a byte offset. */
#ifndef VS_TEST_PROXY_H
#define VS_TEST_PROXY_H

#include <stdbool.h>
#include <stdint.h>

enum proxy_dir { PROXY_TO_DST = 0, PROXY_TO_SRC = 1 };
enum proxy_action { PROXY_NONE, PROXY_CUT, PROXY_CORRUPT, PROXY_STALL };

struct proxy_fault {
    enum proxy_action action;
    enum proxy_dir dir;
    uint64_t offset;          /* bytes of that direction before the fault */
    unsigned stall_ms;        /* PROXY_STALL */
    bool hold_open;           /* when the destination's side closes, keep the source's
                                 connection open and swallow what it sends (a path that
                                 keeps a dead peer's connections open: the source can learn
                                 of the end only from the destination's RESOLVE call) */
};

struct test_proxy;

/* Start forwarding 127.0.0.1:port (returned) to 127.0.0.1:target_port. */
struct test_proxy *proxy_start(int target_port, const struct proxy_fault *fault, int *port);
/* Whether the fault was applied (the offset was reached). */
int proxy_fired(struct test_proxy *p);

/* Faults at a moment the caller chooses (the random fault campaign), on the connections
 * open at that moment: shut every one down, both directions; hold every byte in flight
 * for ms (no pump reads or forwards until then; TCP's buffers fill and the senders block);
 * flip one byte (at position pos of the next chunk read, modulo its length) of the next
 * data that connection number conn (modulo the connections so far) carries in direction
 * dir. Each returns the number of connections it touched (0: none open, nothing done). */
unsigned proxy_cut_all(struct test_proxy *p);
unsigned proxy_stall_all(struct test_proxy *p, unsigned ms);
unsigned proxy_corrupt_next(struct test_proxy *p, enum proxy_dir dir, unsigned conn, uint32_t pos);
void proxy_stop(struct test_proxy *p);

#endif
