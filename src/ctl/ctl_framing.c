/* Finding the requests in a connection's input: one JSON value after the other, with or
 * without newlines between them; invalid input answered and skipped to the next line, an
 * overlong request answered and the connection closed (ctl_server.h). */
#include "ctl/ctl_conn.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

static size_t skip_space(const char *p, size_t len)
{
    size_t i = 0;
    while (i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    return i;
}

static void consume(struct ctl_conn *c, size_t n)
{
    c->in_start += n;
    c->in_len -= n;
}

/* After invalid input found at byte `at`: skip to the next line (or drop what is
 * buffered when no line follows). */
static void resync(struct ctl_conn *c, size_t at)
{
    char *start = c->in + c->in_start;
    if (at >= c->in_len) {
        consume(c, c->in_len);
        return;
    }
    char *nl = memchr(start + at, '\n', c->in_len - at);
    consume(c, nl ? (size_t)(nl - start) + 1 : c->in_len);
}

/* The length of the first JSON value in p[0..len) (p[0] is not white space), or 0 while
 * it is incomplete. Only brackets and strings are followed; the parser checks the rest. */
static size_t value_end(const char *p, size_t len, bool eof)
{
    size_t depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char ch = p[i];
        if (in_string) {
            if (ch == '\\')
                i++;
            else if (ch == '"' && (in_string = false, depth == 0))
                return i + 1;
        } else if (ch == '"') {
            in_string = true;
        } else if (ch == '{' || ch == '[') {
            depth++;
        } else if (ch == '}' || ch == ']') {
            if (depth <= 1)
                return i + 1; /* the end, or a stray closer: the parser says which */
            depth--;
        } else if (depth == 0 && (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n')) {
            return i; /* a bare number or literal */
        }
    }
    return eof ? len : 0;
}

struct json_object *ctl_conn_next_value(struct ctl_conn *c, bool *need_more)
{
    *need_more = false;
    consume(c, skip_space(c->in + c->in_start, c->in_len));
    if (c->in_len == 0) {
        *need_more = true;
        return NULL;
    }
    const char *start = c->in + c->in_start;
    size_t end = value_end(start, c->in_len, c->eof);
    if (end > CTL_MAX_LINE || (end == 0 && c->in_len > CTL_MAX_LINE)) {
        char msg[200];
        snprintf(msg, sizeof(msg), "request too long (more than %d bytes); closing the "
                 "connection", CTL_MAX_LINE);
        ctl_qmp_error(c, "GenericError", msg, NULL);
        consume(c, c->in_len);
        c->closing = true;
        return NULL;
    }
    if (end == 0)
        end = c->in_len; /* incomplete: parse what there is, to find errors early */
    const char *nul = memchr(start, '\0', end);
    if (nul) {
        ctl_qmp_error(c, "GenericError", "invalid input: a NUL byte; send JSON objects", NULL);
        resync(c, (size_t)(nul - start));
        return NULL;
    }
    struct json_tokener *tok = json_tokener_new();
    if (!tok) {
        c->dead = true;
        return NULL;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    struct json_object *v = json_tokener_parse_ex(tok, start, (int)end);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    bool complete = value_end(start, c->in_len, c->eof) != 0;
    if (!v && jerr == json_tokener_continue && complete) /* a bare number or literal */
        v = json_tokener_parse_ex(tok, " ", 1), jerr = json_tokener_get_error(tok);
    size_t at = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (jerr == json_tokener_continue && !complete) {
        *need_more = true;
        return NULL;
    }
    if (jerr != json_tokener_success) {
        char msg[300];
        snprintf(msg, sizeof(msg), "JSON parse error, %s near byte %zu; send one JSON object "
                 "such as {\"execute\": \"query-status\"}",
                 jerr == json_tokener_continue ? "the input ends inside a value"
                                               : json_tokener_error_desc(jerr), at + 1);
        ctl_qmp_error(c, "GenericError", msg, NULL);
        json_object_put(v);
        resync(c, at);
        return NULL;
    }
    consume(c, end);
    if (!v) /* JSON null */
        ctl_qmp_error(c, "GenericError", "QMP input must be a JSON object", NULL);
    return v;
}
