#include "vmm/virtio/net_rate.h"

void vs_tb_init(struct vs_token_bucket *b, uint64_t rate, uint64_t now_ns)
{
    double burst = (double)rate * VS_TB_BURST_NS / 1e9;
    b->rate = rate;
    b->burst = burst < VS_TB_MIN_BURST ? VS_TB_MIN_BURST : burst;
    b->tokens = b->burst;
    b->last_ns = now_ns;
}

uint64_t vs_tb_wait(struct vs_token_bucket *b, uint64_t now_ns)
{
    if (!b->rate)
        return 0;
    if (now_ns > b->last_ns) {
        b->tokens += (double)(now_ns - b->last_ns) * (double)b->rate / 1e9;
        if (b->tokens > b->burst)
            b->tokens = b->burst;
        b->last_ns = now_ns;
    }
    if (b->tokens >= 0)
        return 0;
    return (uint64_t)(-b->tokens * 1e9 / (double)b->rate) + 1;
}

void vs_tb_charge(struct vs_token_bucket *b, size_t len)
{
    if (b->rate)
        b->tokens -= (double)len;
}
