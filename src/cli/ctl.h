/* `vmshift ctl SOCKET COMMAND [key=value ...] [--timeout MS] [--raw]`: send one control
 * request to a running VM and print the reply. */
#ifndef VS_CLI_CTL_H
#define VS_CLI_CTL_H

/* argv[0] is "ctl". Returns the process exit code: 0 if the reply says ok:true, 1 if it
 * says ok:false, 2 for usage errors and connection failures. */
int cli_ctl_main(int argc, char **argv);

#endif
