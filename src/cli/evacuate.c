#include "cli/evacuate.h"
#include "common/error.h"
#include "ctl/ctl_client.h"
#include "evacuate/drain.h"
#include "evacuate/evacuate_options.h"

#include <json-c/json.h>
#include <stdio.h>

int cli_evacuate_main(int argc, char **argv)
{
    struct evacuate_options o;
    if (evacuate_options_parse(argc, argv, &o)) {
        fprintf(stderr, "vmshift evacuate: %s\n", vs_last_error());
        return 2;
    }
    if (o.help) {
        evacuate_print_usage(stdout);
        evacuate_options_free(&o);
        return 0;
    }
    struct ctl_remote remote = { 0 };
    if (o.remote && ctl_remote_init(&remote, &o.security, "the connections to the hosts")) {
        fprintf(stderr, "vmshift evacuate: %s\n", vs_last_error());
        evacuate_options_free(&o);
        return 2;
    }
    static struct evac_drain d;
    int rc = evac_drain_run(&o, &remote, &d);
    if (rc < 0) {
        fprintf(stderr, "vmshift evacuate: cannot list the VMs of %s: %s\n", o.from,
                vs_last_error());
        evac_drain_free(&d);
        evacuate_options_free(&o);
        ctl_remote_free(&remote);
        return 1;
    }
    int status = rc == 0 ? 0 : 1;
    if (d.nitems == 0)
        fprintf(stderr, "vmshift evacuate: %s runs no VMs; nothing to do\n", o.from);
    evac_print_summary(&d, stdout);
    fflush(stdout);
    if (o.report) {
        struct json_object *r = evac_report_json(&d);
        if (json_object_to_file_ext(o.report, r, JSON_C_TO_STRING_PRETTY) < 0) {
            fprintf(stderr, "vmshift evacuate: cannot write the report to %s\n", o.report);
            status = status ? status : 1;
        }
        json_object_put(r);
    }
    evac_drain_free(&d);
    evacuate_options_free(&o);
    ctl_remote_free(&remote);
    return status;
}
