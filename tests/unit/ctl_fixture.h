/* The control-plane unit tests' fixture: a ctl server on a temporary path, served by a
 * thread, whose table has echo, fail, silentfail, emit, list, size, big and sleep; and
 * helpers that talk to a socket byte by byte. */
#ifndef VS_TEST_CTL_FIXTURE_H
#define VS_TEST_CTL_FIXTURE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ctl_server;
struct json_object;

struct fixture {
    char dir[64];
    char path[128];
    struct ctl_server *srv;
    pthread_t thread;
    atomic_bool stop;
    atomic_int handled; /* handler calls */
};

int setup(void **state);
int teardown(void **state);
int raw_connect(const char *path);
void raw_send(int fd, const char *data, size_t len);
char *raw_read_lines(int fd, int nlines, bool *eof);
bool raw_wait_eof(int fd);
struct json_object *line_json(const char *text, int idx);
bool reply_ok(struct json_object *r);
const char *reply_str(struct json_object *r, const char *key);
int64_t reply_int(struct json_object *r, const char *key);
void raw_exchange(const char *path, const char *data, size_t len, int n,
                  struct json_object **out, bool expect_eof);

#endif
