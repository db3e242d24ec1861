#include "migrate/precopy/recv_tuning.h"
#include "common/error.h"

#include <string.h>
#include <unistd.h>

int vs_page_writes_parse(const char *text, enum vs_page_writes *out)
{
    static const char *const names[] = { "auto", "file", "mapping" };
    for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (!strcmp(text, names[i])) {
            *out = (enum vs_page_writes)i;
            return 0;
        }
    return vs_fail(EINVAL, "--page-writes '%s' is not one of auto, file, mapping", text);
}

const char *vs_page_writes_name(enum vs_page_writes w)
{
    return w == VS_PAGE_WRITES_FILE ? "file" : w == VS_PAGE_WRITES_MAPPING ? "mapping" : "auto";
}

bool vs_page_writes_use_file(enum vs_page_writes w, bool huge_pages)
{
    return w == VS_PAGE_WRITES_FILE || (w == VS_PAGE_WRITES_AUTO && !huge_pages);
}

unsigned vs_prefault_threads_default(long cpus)
{
    if (cpus < 4)
        return 0;
    return cpus >= 16 ? 4 : (unsigned)(cpus / 4);
}

unsigned vs_recv_tuning_prefault_threads(const struct vs_recv_tuning *t)
{
    if (t && t->prefault_threads >= 0)
        return (unsigned)t->prefault_threads;
    return vs_prefault_threads_default(sysconf(_SC_NPROCESSORS_ONLN));
}
