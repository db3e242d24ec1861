/* vmshift: a KVM virtual machine monitor built for live migration. */
#include "cli/ctl.h"
#include "cli/evacuate.h"
#include "cli/fill_image.h"
#include "cli/migrate.h"
#include "cli/plan.h"
#include "cli/receive.h"
#include "cli/run.h"

#include <stdio.h>
#include <string.h>

static const char usage[] =
    "usage: vmshift COMMAND [options]\n"
    "commands:\n"
    "  run     boot a VM with a workload guest (vmshift run --help)\n"
    "  ctl     send a command to a running VM's control socket (vmshift ctl --help)\n"
    "  receive wait for one incoming VM and run it (vmshift receive --help)\n"
    "  migrate live-migrate a running VM to a `vmshift receive` (vmshift migrate --help)\n"
    "  evacuate  live-migrate every VM of a vmshiftd host to others (vmshift evacuate --help)\n"
    "  plan    predict a migration pass by pass and recommend a strategy (vmshift plan --help)\n"
    "  fill-image  write the memory image of --fill to a file, for other VMMs\n";

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        puts("vmshift " VMSHIFT_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "run") == 0)
        return cli_run_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "receive") == 0)
        return cli_receive_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "migrate") == 0)
        return cli_migrate_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "plan") == 0)
        return cli_plan_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "fill-image") == 0)
        return cli_fill_image_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "evacuate") == 0)
        return cli_evacuate_main(argc - 1, argv + 1);
    if (strcmp(argv[1], "ctl") == 0)
        return cli_ctl_main(argc - 1, argv + 1);
    fprintf(stderr, "vmshift: unknown command '%s'; try vmshift --help\n", argv[1]);
    return 2;
}
