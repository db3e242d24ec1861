#include "size.h"
#include "error.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int parse_number(const char *text, uint64_t *out, char **end)
{
    if (!text || !*text)
        return vs_fail(EINVAL, "empty number");
    if (!isdigit((unsigned char)text[0]))
        return vs_fail(EINVAL, "'%s' is not a number", text);
    errno = 0;
    unsigned long long v = strtoull(text, end, 0);
    if (errno == ERANGE)
        return vs_fail(ERANGE, "'%s' is too large", text);
    *out = v;
    return 0;
}

int vs_parse_u64(const char *text, uint64_t *out)
{
    char *end;
    int rc = parse_number(text, out, &end);
    if (rc)
        return rc;
    if (*end)
        return vs_fail(EINVAL, "'%s' is not a whole number", text);
    return 0;
}

int vs_parse_size(const char *text, uint64_t *out)
{
    uint64_t v = 0;
    char *end;
    int rc = parse_number(text, &v, &end);
    if (rc)
        return rc;
    unsigned shift = 0;
    if (*end) {
        switch (toupper((unsigned char)*end)) {
        case 'K': shift = 10; break;
        case 'M': shift = 20; break;
        case 'G': shift = 30; break;
        case 'T': shift = 40; break;
        case 'B': shift = 0; break;
        default:
            return vs_fail(EINVAL, "'%s' has an unknown size suffix (use K, M, G or T)", text);
        }
        const char *rest = end + 1;
        if (toupper((unsigned char)*end) == 'B') {
            if (*rest)
                return vs_fail(EINVAL, "'%s' has junk after the size", text);
        } else if (*rest && strcasecmp(rest, "iB") != 0 && strcasecmp(rest, "B") != 0) {
            return vs_fail(EINVAL, "'%s' has junk after the size suffix", text);
        }
    }
    if (shift && v > (UINT64_MAX >> shift))
        return vs_fail(ERANGE, "'%s' is too large", text);
    *out = v << shift;
    return 0;
}

const char *vs_format_size(uint64_t bytes, char *buf, unsigned len)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    double v = (double)bytes;
    unsigned u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%llu B", (unsigned long long)bytes);
    else
        snprintf(buf, len, "%.1f %s", v, units[u]);
    return buf;
}
