/* memset and memcpy: GCC requires them even with -ffreestanding and may emit calls for
 * aggregate initialisation and copies (today's code gets them inlined; a larger struct
 * would not). String instructions rather than C loops, so the compiler cannot turn the
 * body back into a call to itself. */
#include <stddef.h>

void *memset(void *dst, int c, size_t n)
{
    void *d = dst;

    __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
    return dst;
}

void *memcpy(void *dst, const void *src, size_t n)
{
    void *d = dst;

    __asm__ volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
    return dst;
}
