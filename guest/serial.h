/* Console output on COM1. A line is built privately, then written whole under a lock,
 * so lines from different vCPUs never interleave. */
#ifndef VS_GUEST_SERIAL_H
#define VS_GUEST_SERIAL_H

#include <stdint.h>
#include "fmt.h"

#define VS_LINE_MAX 160

struct vs_line {
    struct vs_buf b;
    char text[VS_LINE_MAX + 1];     /* + the newline */
};

void vs_line_start(struct vs_line *l);
void vs_line_end(struct vs_line *l);

static inline void vs_line_str(struct vs_line *l, const char *s)
{
    vs_buf_puts(&l->b, s);
}

static inline void vs_line_dec(struct vs_line *l, uint64_t v)
{
    vs_buf_dec(&l->b, v);
}

static inline void vs_line_hex(struct vs_line *l, uint64_t v)
{
    vs_buf_hex(&l->b, v);
}

/* One whole line. */
void vs_puts(const char *s);

#endif
