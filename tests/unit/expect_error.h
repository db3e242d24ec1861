/* Shared by unit tests: assert that a call failed and that its user-facing message
 * (vs_last_error) names what it should. Set VS_TEST_SHOW_ERRORS=1 to see the messages. */
#ifndef VS_TEST_EXPECT_ERROR_H
#define VS_TEST_EXPECT_ERROR_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/error.h"

static inline void expect_msg(int rc, const char *n1, const char *n2)
{
    const char *msg = vs_last_error();
    if (getenv("VS_TEST_SHOW_ERRORS"))
        fprintf(stderr, "    error: %s\n", msg);
    if (rc >= 0 || !strstr(msg, n1) || (n2 && !strstr(msg, n2)))
        fail_msg("rc %d, message \"%s\" (wanted \"%s\"%s%s)", rc, msg, n1, n2 ? ", " : "",
                 n2 ? n2 : "");
}

#endif
