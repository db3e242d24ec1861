#include "common/rate.h"
#include "common/error.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct unit {
    const char *name;
    double bytes;        /* bytes per second for one of it */
};

static const struct unit units[] = {
    { "", 1 }, { "B", 1 },
    { "K", 1024.0 }, { "KiB", 1024.0 }, { "KB", 1024.0 },
    { "M", 1048576.0 }, { "MiB", 1048576.0 }, { "MB", 1048576.0 },
    { "G", 1073741824.0 }, { "GiB", 1073741824.0 }, { "GB", 1073741824.0 },
    { "bit", 1 / 8.0 }, { "kbit", 1e3 / 8 }, { "mbit", 1e6 / 8 }, { "gbit", 1e9 / 8 },
    { "tbit", 1e12 / 8 },
    { "p", 4096 }, { "pages", 4096 },
};

int vs_parse_rate(const char *text, double *out)
{
    if (!text || !isdigit((unsigned char)text[0]))
        return vs_fail(EINVAL, "'%s' is not a rate; give e.g. 10gbit, 500M (bytes/s) or 20000p "
                       "(pages/s)", text ? text : "");
    char *end;
    double v = strtod(text, &end);
    if (!isfinite(v) || v < 0)
        return vs_fail(EINVAL, "'%s' is not a rate", text);
    char unit[16];
    size_t n = strlen(end);
    if (n >= 2 && strcmp(end + n - 2, "/s") == 0)
        n -= 2;
    if (n >= sizeof(unit))
        return vs_fail(EINVAL, "'%s' has an unknown unit", text);
    memcpy(unit, end, n);
    unit[n] = '\0';
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcasecmp(unit, units[i].name) == 0) {
            *out = v * units[i].bytes;
            return 0;
        }
    return vs_fail(EINVAL, "'%s' has an unknown unit '%s'; use bit/kbit/mbit/gbit (bits/s), "
                   "K/M/G (bytes/s) or p (pages/s)", text, unit);
}
