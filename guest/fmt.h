/* A bounded, always NUL-terminated string builder: the guest has no printf, and the
 * parameter parser (also built hosted for its unit test) formats its errors with it. */
#ifndef VS_GUEST_FMT_H
#define VS_GUEST_FMT_H

#include <stdint.h>

struct vs_buf {
    char *p;
    unsigned cap;   /* bytes at p, including the terminating NUL */
    unsigned len;
};

static inline void vs_buf_init(struct vs_buf *b, char *p, unsigned cap)
{
    b->p = p;
    b->cap = p ? cap : 0;
    b->len = 0;
    if (b->cap)
        p[0] = '\0';
}

/* Characters that do not fit are dropped. */
static inline void vs_buf_putc(struct vs_buf *b, char c)
{
    if (b->len + 1 < b->cap) {
        b->p[b->len++] = c;
        b->p[b->len] = '\0';
    }
}

static inline void vs_buf_putn(struct vs_buf *b, const char *s, unsigned n)
{
    for (unsigned i = 0; i < n && s[i]; i++)
        vs_buf_putc(b, s[i]);
}

static inline void vs_buf_puts(struct vs_buf *b, const char *s)
{
    while (*s)
        vs_buf_putc(b, *s++);
}

static inline void vs_buf_dec(struct vs_buf *b, uint64_t v)
{
    char t[20];
    unsigned n = 0;

    do {
        t[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        vs_buf_putc(b, t[--n]);
}

static inline void vs_buf_hex(struct vs_buf *b, uint64_t v)
{
    char t[16];
    unsigned n = 0;

    do {
        t[n++] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    vs_buf_puts(b, "0x");
    while (n)
        vs_buf_putc(b, t[--n]);
}

#endif
