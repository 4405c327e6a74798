/* Status codes and version: the strings behind sl_strerror(). */
#include "segloss/core.h"

const char *sl_strerror(sl_status status)
{
    switch (status) {
    case SL_OK: return "ok";
    case SL_EINVAL: return "invalid argument";
    case SL_ESHAPE: return "shape mismatch";
    case SL_EDTYPE: return "unsupported data type";
    case SL_ERANGE: return "value out of range";
    case SL_ENONFINITE: return "non-finite value (NaN or Inf)";
    case SL_ENOMEM: return "out of memory";
    case SL_EIO: return "input/output error";
    case SL_EFORMAT: return "malformed input";
    case SL_EBADSTATE: return "object in a bad state";
    case SL_EOVERFLOW: return "size overflow";
    case SL_EUNKNOWN: return "unknown name";
    case SL_EEMPTY: return "empty input";
    case SL_EUNSUPPORTED: return "unsupported";
    }
    return "unknown status";
}

const char *sl_version(void) { return SL_VERSION_STRING; }
