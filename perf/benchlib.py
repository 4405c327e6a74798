"""What the loss benchmarks share: the ctypes views of segloss's structs, the catalogue's names, a loss call on
numpy buffers, and the timer. Settings come from the environment: BENCH_THREADS (2), BENCH_SHAPE (N,C,D,H,W;
2,4,128,128,128); BENCH_REPS is read by each script with its own default.
"""
import ctypes as C
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "ref"))
import slref  # noqa: E402,F401  (re-exported: slref.lib())

THREADS = int(os.environ.get("BENCH_THREADS", "2"))
SHAPE = tuple(int(v) for v in os.environ.get("BENCH_SHAPE", "2,4,128,128,128").split(","))


class Dims(C.Structure):
    _fields_ = [("n", C.c_int64), ("c", C.c_int64), ("spatial_ndim", C.c_int), ("spatial", C.c_int64 * 3)]


class Target(C.Structure):
    _fields_ = [("kind", C.c_int), ("labels", C.c_void_p), ("soft", C.c_void_p), ("mask", C.c_void_p)]


class Opts(C.Structure):
    _fields_ = [("spacing", C.c_double * 3), ("dist", C.c_void_p), ("threads", C.c_int), ("training", C.c_int)]


def median_time(fn, reps, warm=True):
    """(median wall seconds, median process CPU seconds) over reps runs after an optional warm-up."""
    if warm:
        fn()
    ts, cs = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    return statistics.median(ts), statistics.median(cs)


def interleaved_min(fns, reps, warm=True):
    """Minimum wall seconds of each function over reps rounds that call them in turn
    (a, b, a, b, ...): a load that comes and goes on a shared machine hits both alike."""
    if warm:
        for fn in fns:
            fn()
    best = [float("inf")] * len(fns)
    for _ in range(reps):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


def ratio_line(name, t_seg, peer, t_peer, threads=THREADS):
    """The line every perf script prints per comparison."""
    return "RATIO %s: %.1fx (segloss %.4f s, %s %.4f s, threads %d)" % (name, t_peer / t_seg, t_seg, peer, t_peer,
                                                                      threads)


def catalogue_names(lib):
    lib.sl_loss_catalogue.restype = C.POINTER(C.c_char_p)
    return {lib.sl_loss_catalogue(i)[0].decode() for i in range(lib.sl_loss_catalogue_size())}


class LossCall:
    """A segloss loss on fixed buffers: logits x (float32, N C spatial), labels y (int32, N spatial), gradient g.
    call() runs forward+backward and leaves the value in .value; raises on an error status."""

    def __init__(self, lib, spec, x, y, g, threads=THREADS):
        self.lib, self.x, self.y, self.g = lib, x, y, g
        self.dims = Dims(x.shape[0], x.shape[1], x.ndim - 2, (C.c_int64 * 3)(*x.shape[2:]))
        self.tgt = Target(0, y.ctypes.data, None)
        self.opts = Opts((C.c_double * 3)(1, 1, 1), None, threads, 0)
        self.msg = C.create_string_buffer(512)
        self.val = C.c_double()
        self.loss = C.c_void_p()
        if lib.sl_loss_create(spec.encode(), C.byref(self.loss), self.msg, 512) != 0:
            raise ValueError(self.msg.value.decode())

    def call(self):
        st = self.lib.sl_loss_forward(self.loss, self.x.ctypes.data_as(C.c_void_p), C.byref(self.dims),
                                      C.byref(self.tgt), C.byref(self.opts), C.byref(self.val),
                                      self.g.ctypes.data_as(C.c_void_p), self.msg, 512)
        if st != 0:
            raise RuntimeError(self.msg.value.decode())

    @property
    def value(self):
        return self.val.value

    def free(self):
        self.lib.sl_loss_free(self.loss)
