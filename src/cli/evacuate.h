#ifndef VS_CLI_EVACUATE_H
#define VS_CLI_EVACUATE_H

/* `vmshift evacuate`: drain a vmshiftd host into others (evacuate/drain.h). */
int cli_evacuate_main(int argc, char **argv);

#endif
