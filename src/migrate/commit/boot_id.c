#include "migrate/commit/boot_id.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

void vs_boot_id(uint8_t id[16])
{
    memset(id, 0, 16);
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
    if (!f)
        return;
    char text[64] = "";
    if (!fgets(text, sizeof(text), f))
        text[0] = '\0';
    fclose(f);
    unsigned n = 0;
    for (const char *p = text; *p && n < 32; p++) {
        if (!isxdigit((unsigned char)*p))
            continue;
        unsigned v = isdigit((unsigned char)*p) ? (unsigned)(*p - '0')
                                                : (unsigned)(tolower((unsigned char)*p) - 'a' + 10);
        id[n / 2] |= (uint8_t)(n % 2 ? v : v << 4);
        n++;
    }
}
