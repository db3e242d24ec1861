/* A growable byte buffer: state blobs (vCPU state, device state) are built in one. */
#ifndef VS_BLOB_H
#define VS_BLOB_H

#include <stddef.h>
#include <stdint.h>

struct vs_blob {
    uint8_t *data;
    size_t len, cap;
};

/* Room for `extra` more bytes after len (len is unchanged). */
int vs_blob_reserve(struct vs_blob *b, size_t extra);
/* Append len bytes (data NULL: zeros). */
int vs_blob_append(struct vs_blob *b, const void *data, size_t len);
void vs_blob_free(struct vs_blob *b);

#endif
