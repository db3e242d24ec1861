#include "common/blob.h"
#include "common/error.h"

#include <stdlib.h>
#include <string.h>

int vs_blob_reserve(struct vs_blob *b, size_t extra)
{
    if (extra > SIZE_MAX / 2 - b->len)
        return vs_fail(ENOMEM, "a state blob cannot grow by %zu bytes", extra);
    size_t need = b->len + extra;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < need)
        cap *= 2;
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return vs_fail(ENOMEM, "out of memory growing a state blob to %zu bytes", cap);
    b->data = p;
    b->cap = cap;
    return 0;
}

int vs_blob_append(struct vs_blob *b, const void *data, size_t len)
{
    int rc = vs_blob_reserve(b, len);
    if (rc)
        return rc;
    if (data)
        memcpy(b->data + b->len, data, len);
    else
        memset(b->data + b->len, 0, len);
    b->len += len;
    return 0;
}

void vs_blob_free(struct vs_blob *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
