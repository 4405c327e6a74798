/*
 * The header of a .npy file, built by hand for the .npy tests (test_npy.c,
 * test_npy_map.c): magic, version 1 or 2, the header length, the dict, space
 * padding and '\n', so that the data starts at a multiple of 64 plus `skew`
 * bytes (numpy writes skew 0). Returns the header's length; out needs room
 * for it (the dict's length plus 76 + skew bytes).
 */
#ifndef SL_TEST_NPY_HEADER_H
#define SL_TEST_NPY_HEADER_H

#include <string.h>

static size_t npy_header(unsigned char *out, int version, const char *dict, int skew)
{
    size_t pre = version == 1 ? 10 : 12, dl = strlen(dict);
    size_t total = pre + dl + 1, padded = (total + 63) / 64 * 64 + (size_t)skew, hl = padded - pre;
    memcpy(out, "\x93NUMPY", 6);
    out[6] = (unsigned char)version;
    out[7] = 0;
    if (version == 1) {
        out[8] = (unsigned char)(hl & 0xff);
        out[9] = (unsigned char)(hl >> 8);
    } else {
        for (int i = 0; i < 4; i++) out[8 + i] = (unsigned char)(hl >> (8 * i));
    }
    memcpy(out + pre, dict, dl);
    memset(out + pre + dl, ' ', padded - pre - dl - 1);
    out[padded - 1] = '\n';
    return padded;
}

#endif
