#ifndef VS_CLI_RUN_H
#define VS_CLI_RUN_H
/* `vmshift run`: boot a VM with a workload and serve its control socket. */
int cli_run_main(int argc, char **argv);
#endif
