/* vmshiftd: the host agent (host_daemon.c). */
#include "host/host_daemon.h"
#include "common/error.h"

#include <limits.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    static struct host_daemon d;
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[n > 0 ? n : 0] = '\0';
    if (host_options_parse(argc, argv, n > 0 ? self : argv[0], &d.opt)) {
        fprintf(stderr, "vmshiftd: %s\n", vs_last_error());
        return 2;
    }
    if (d.opt.help) {
        fputs(host_usage, stdout);
        return 0;
    }
    return host_daemon_main(&d);
}
