#ifndef VS_CLI_PLAN_H
#define VS_CLI_PLAN_H
/* `vmshift plan`: the convergence model's prediction of a migration, pass by pass, from
 * given numbers or from a running VM's measured dirty rate. */
int cli_plan_main(int argc, char **argv);
#endif
