/* The message for what getopt_long (optstring ":") found wrong: an option that needs a
 * value and got none (':'), or one nobody knows ('?'). */
#ifndef VS_OPTION_ERROR_H
#define VS_OPTION_ERROR_H

/* Sets the error ("--mem needs a value; see vmshift run --help") and returns -EINVAL.
 * `c` is getopt's return value, argv[optind - 1] the offending argument. */
int vs_option_error(int c, char *const *argv, int optind_now, const char *help);

#endif
