#ifndef VS_CLI_MIGRATE_H
#define VS_CLI_MIGRATE_H
/* `vmshift migrate SOCKET --to HOST:PORT`: start a live migration of the VM behind a
 * control socket, show its progress, print the report. */
int cli_migrate_main(int argc, char **argv);
#endif
