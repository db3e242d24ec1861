/* `vmshift fill-image`: write the bytes `vmshift run --fill KIND --seed N` puts in guest
 * RAM to a file, so another VMM (QEMU's loader device in bench/) can start from the same
 * memory image. */
#include "cli/fill_image.h"
#include "common/option_error.h"
#include "common/error.h"
#include "common/size.h"
#include "vmm/fill.h"
#include "vmshift/guest_abi.h"

#include <errno.h>
#include <stdbool.h>

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: vmshift fill-image --size SIZE --out FILE [--fill random|pattern] [--seed N]\n"
    "                          [--start ADDR]\n"
    "  writes what `vmshift run --fill KIND --seed N` puts at guest-physical ADDR.. (default\n"
    "  0x400000, where --fill starts), SIZE bytes of it\n";

int cli_fill_image_main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "size", required_argument, NULL, 's' }, { "out", required_argument, NULL, 'o' },
        { "fill", required_argument, NULL, 'f' }, { "seed", required_argument, NULL, 'e' },
        { "start", required_argument, NULL, 'a' }, { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    uint64_t size = 0, seed = 1, start = 0x400000;
    uint32_t fill = VS_FILL_RANDOM;
    const char *out = NULL;
    int c, rc = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1 && !rc) {
        switch (c) {
        case 's': rc = vs_parse_size(optarg, &size); break;
        case 'o': out = optarg; break;
        case 'f': rc = vs_fill_parse(optarg, &fill); break;
        case 'e': rc = vs_parse_u64(optarg, &seed); break;
        case 'a': rc = vs_parse_size(optarg, &start); break;
        case 'h': fputs(usage, stdout); return 0;
        default:
            vs_option_error(c, argv, optind, "vmshift fill-image --help");
            fprintf(stderr, "vmshift fill-image: %s\n", vs_last_error());
            return 2;
        }
    }
    if (rc || !out || !size || size % 4096 || start % 4096) {
        fprintf(stderr, "vmshift fill-image: %s\n%s", rc ? vs_last_error() :
                "give --size (a multiple of 4 KiB) and --out; --start must be 4 KiB-aligned",
                usage);
        return 2;
    }
    FILE *f = fopen(out, "we");
    if (!f) {
        fprintf(stderr, "vmshift fill-image: cannot create %s: %s\n", out, strerror(errno));
        return 1;
    }
    const uint64_t chunk = 4ULL << 20;
    uint8_t *buf = malloc(chunk);
    for (uint64_t off = 0; buf && off < size; off += chunk) {
        uint64_t n = size - off < chunk ? size - off : chunk;
        vs_fill_buffer(buf, n, start + off, fill, seed);
        if (fwrite(buf, 1, n, f) != n)
            break;
    }
    bool ok = buf && !ferror(f);
    free(buf);
    if (fclose(f) != 0 || !ok) {
        fprintf(stderr, "vmshift fill-image: writing %s failed: %s\n", out, strerror(errno));
        return 1;
    }
    return 0;
}
