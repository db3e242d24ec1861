#include "migrate/commit/boot_id.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The hex digits of text (dashes and other characters skipped) into id. */
static void parse_id(const char *text, uint8_t id[16])
{
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

void vs_boot_id(uint8_t id[16])
{
    memset(id, 0, 16);
    const char *test = getenv(VS_BOOT_ID_TEST_ENV);
    if (test && *test) {
        parse_id(test, id);
        return;
    }
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
    if (!f)
        return;
    char text[64] = "";
    if (!fgets(text, sizeof(text), f))
        text[0] = '\0';
    fclose(f);
    parse_id(text, id);
}
