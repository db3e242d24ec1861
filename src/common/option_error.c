#include "common/option_error.h"
#include "common/error.h"

int vs_option_error(int c, char *const *argv, int optind_now, const char *help)
{
    const char *arg = optind_now > 0 ? argv[optind_now - 1] : "?";
    if (c == ':')
        return vs_fail(EINVAL, "%s needs a value; see %s", arg, help);
    return vs_fail(EINVAL, "unknown option '%s'; see %s", arg, help);
}
