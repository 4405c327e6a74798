/*
 * The decoded-voxel limit (voxlimit.h).
 */
#include "voxlimit.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include "internal.h"

static _Atomic int64_t forced; /* 0: not set */

void sl_set_max_voxels(int64_t n) { atomic_store(&forced, n > 0 ? n : 0); }

int64_t sl_parse_voxels(const char *s)
{
    if (!s || !*s) return -1;
    const int64_t cap = (int64_t)1 << 62;
    if (s[0] == '2' && s[1] == '^') {
        char *end;
        errno = 0;
        long e = strtol(s + 2, &end, 10);
        if (errno || end == s + 2 || *end || e < 0 || e > 62) return -1;
        return (int64_t)1 << e;
    }
    if (*s < '0' || *s > '9') return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || v <= 0) return -1;
    int shift = 0;
    if (*end) {
        switch (*end) {
        case 'k': case 'K': shift = 10; break;
        case 'M': shift = 20; break;
        case 'G': shift = 30; break;
        case 'T': shift = 40; break;
        default: return -1;
        }
        if (end[1]) return -1;
    }
    if (v > (cap >> shift)) return -1;
    return (int64_t)v << shift;
}

int64_t sl_max_voxels(void)
{
    int64_t f = atomic_load(&forced);
    if (f > 0) return f;
    const char *env = getenv("SEGLOSS_MAX_VOXELS");
    if (!env || !*env) return SL_MAX_VOXELS_DEFAULT;
    return sl_parse_voxels(env);
}

sl_status sl_check_voxels(int64_t count, const char *who, char *msg, size_t msglen)
{
    int64_t lim = sl_max_voxels();
    if (lim < 0)
        return sl_errf(msg, msglen, SL_EINVAL,
                       "SEGLOSS_MAX_VOXELS must be a positive voxel count such as 268435456, 256M or 2^28");
    if (count <= lim) return SL_OK;
    return sl_errf(msg, msglen, SL_EOVERFLOW,
                   "%s: %lld voxels exceed the limit of %lld (raise it with --max-voxels N or "
                   "SEGLOSS_MAX_VOXELS=N; see docs/io.md)",
                   who, (long long)count, (long long)lim);
}
