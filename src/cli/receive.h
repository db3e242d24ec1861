#ifndef VS_CLI_RECEIVE_H
#define VS_CLI_RECEIVE_H
/* `vmshift receive`: wait for one incoming VM, then run it like `vmshift run`. */
int cli_receive_main(int argc, char **argv);
#endif
