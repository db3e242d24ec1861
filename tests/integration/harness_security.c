/* Migration security for tests: which credentials (PSK, certificates, none) every
 * vmshift process and migrate request of a test uses, made once per test binary. */
#include "harness.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static enum test_security security = TEST_SEC_PSK;
static char creds_dir[64];

void test_security_use(enum test_security s)
{
    security = s;
}

static void remove_creds(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", creds_dir);
    if (creds_dir[0] && system(cmd) != 0)
        print_message("could not remove %s\n", creds_dir);
}

const char *test_cred(const char *file)
{
    static char paths[16][128];
    static unsigned next;
    if (!creds_dir[0]) {
        strcpy(creds_dir, "/tmp/vmshift-creds-XXXXXX");
        assert_non_null(mkdtemp(creds_dir));
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "%s/scripts/make-test-certs.sh %s >/dev/null",
                 VMSHIFT_SOURCE_DIR, creds_dir);
        if (system(cmd) != 0)
            fail_msg("could not make test credentials: %s", cmd);
        atexit(remove_creds);
    }
    char *path = paths[next++ % 16];
    snprintf(path, 128, "%s/%s", creds_dir, file);
    return path;
}

bool harness_names_security(const char *const *args)
{
    for (int i = 0; args && args[i]; i++)
        if (!strcmp(args[i], "--insecure") || !strncmp(args[i], "--tls-", 6))
            return true;
    return false;
}

const char *const *harness_security_args(bool source)
{
    static const char *argv[8];
    int n = 0;
    if (security == TEST_SEC_INSECURE) {
        argv[n++] = "--insecure";
    } else if (security == TEST_SEC_PSK) {
        argv[n++] = "--tls-psk";
        argv[n++] = test_cred("psk");
    } else {
        argv[n++] = "--tls-cert";
        argv[n++] = test_cred(source ? "source.pem" : "dest.pem");
        argv[n++] = "--tls-key";
        argv[n++] = test_cred(source ? "source.key" : "dest.key");
        argv[n++] = "--tls-ca";
        argv[n++] = test_cred("ca.pem");
    }
    argv[n] = NULL;
    return argv;
}

void harness_add_migrate_security(struct json_object *req)
{
    json_object_object_foreach(req, k, v) {
        (void)v;
        if (!strcmp(k, "insecure") || !strncmp(k, "tls_", 4))
            return;   /* the test chose */
    }
    const char *const *sec = harness_security_args(true);
    for (int i = 0; sec[i]; i++) {
        char key[32];
        snprintf(key, sizeof(key), "%s", sec[i] + 2);   /* "--tls-psk" -> "tls_psk" */
        for (char *c = key; *c; c++)
            *c = *c == '-' ? '_' : *c;
        bool flag = !sec[i + 1] || !strncmp(sec[i + 1], "--", 2);
        json_object_object_add(req, key, flag ? json_object_new_boolean(1)
                                              : json_object_new_string(sec[++i]));
    }
}
