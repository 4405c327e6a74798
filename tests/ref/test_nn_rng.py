"""The project RNG (src/core/rng.c) against an independent Python version.

splitmix64 and xoshiro256** are re-implemented here from their published
definitions (Steele et al. 2014; Blackman & Vigna 2021) with Python integers
masked to 64 bits; the C outputs must match bit for bit. The normal deviates
use the same Box-Muller formula in Python's math module (same libm on this
machine), compared to 1e-15 relative.

Loads libsegloss.so through ctypes -- sanitized: skip
"""
import ctypes
import math
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
import slref  # noqa: E402

M64 = (1 << 64) - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


class Xoshiro:
    def __init__(self, start):
        s = []
        st = start
        for _ in range(4):
            st, z = splitmix64(st)
            s.append(z)
        self.s = s
        self.spare = None

    def next(self):
        s = self.s
        result = (rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def uniform(self):
        return (self.next() >> 11) * 2.0 ** -53

    def uniformf(self):
        return (self.next() >> 40) * 2.0 ** -24

    def below(self, n):
        thr = (2 ** 64) % n
        while True:
            x = self.next()
            if x >= thr:
                return x % n

    def normal(self):
        if self.spare is not None:
            v, self.spare = self.spare, None
            return v
        u1 = 1.0 - self.uniform()
        u2 = self.uniform()
        r = math.sqrt(-2.0 * math.log(u1))
        th = 2.0 * math.pi * u2
        self.spare = r * math.sin(th)
        return r * math.cos(th)

    def jump(self):
        J = [0x180EC6D33CFD0ABA, 0xD5A61266F0C9392C, 0xA9582618E03FC9AA, 0x39ABDC4529B1661C]
        acc = [0, 0, 0, 0]
        for w in J:
            for b in range(64):
                if w & (1 << b):
                    acc = [a ^ x for a, x in zip(acc, self.s)]
                self.next()
        self.s = acc
        self.spare = None


class CRng(ctypes.Structure):
    _fields_ = [("s", ctypes.c_uint64 * 4), ("spare", ctypes.c_double), ("has_spare", ctypes.c_int)]


def main():
    L = slref.lib()
    L.sl_rng_u64.restype = ctypes.c_uint64
    L.sl_rng_uniform.restype = ctypes.c_double
    L.sl_rng_uniformf.restype = ctypes.c_float
    L.sl_rng_below.restype = ctypes.c_uint64
    L.sl_rng_below.argtypes = [ctypes.POINTER(CRng), ctypes.c_uint64]
    L.sl_rng_normal.restype = ctypes.c_double
    L.sl_rng_seed.argtypes = [ctypes.POINTER(CRng), ctypes.c_uint64]
    L.sl_rng_seed_stream.argtypes = [ctypes.POINTER(CRng), ctypes.c_uint64, ctypes.c_uint64]
    L.sl_splitmix64.restype = ctypes.c_uint64
    chk = slref.Check("test_nn_rng")

    # splitmix64 on its own
    st = ctypes.c_uint64(1234567)
    ps = 1234567
    ok = True
    for _ in range(100):
        got = L.sl_splitmix64(ctypes.byref(st))
        ps, want = splitmix64(ps)
        ok &= got == want and st.value == ps
    chk.true("splitmix64 matches the reference", ok)

    for seed in [0, 1, 42, 2 ** 63 + 12345, M64]:
        r = CRng()
        L.sl_rng_seed(ctypes.byref(r), seed)
        py = Xoshiro(seed)
        chk.true("seed %d: state words" % seed, list(r.s) == py.s)
        chk.true("seed %d: 1000 u64 outputs" % seed,
                 all(L.sl_rng_u64(ctypes.byref(r)) == py.next() for _ in range(1000)))
        chk.true("seed %d: uniform doubles" % seed,
                 all(L.sl_rng_uniform(ctypes.byref(r)) == py.uniform() for _ in range(200)))
        chk.true("seed %d: uniform floats" % seed,
                 all(L.sl_rng_uniformf(ctypes.byref(r)) == py.uniformf() for _ in range(200)))
        for n in [1, 2, 3, 10, 1000003, 2 ** 63 + 1]:
            chk.true("seed %d: below(%d)" % (seed, n),
                     all(L.sl_rng_below(ctypes.byref(r), n) == py.below(n) for _ in range(50)))
        got = [L.sl_rng_normal(ctypes.byref(r)) for _ in range(301)]
        want = [py.normal() for _ in range(301)]
        chk.close("normal deviates", got, want, rtol=1e-15, atol=1e-15)
        L.sl_rng_jump(ctypes.byref(r))
        py.jump()
        chk.true("seed %d: jump state" % seed, list(r.s) == py.s)
        chk.true("seed %d: after jump" % seed,
                 all(L.sl_rng_u64(ctypes.byref(r)) == py.next() for _ in range(100)))

    # streams: stream s of seed is xoshiro started at seed ^ splitmix64(s ^ K)
    for seed, stream in [(0, 0), (7, 1), (7, 2), (123, 99999)]:
        r = CRng()
        L.sl_rng_seed_stream(ctypes.byref(r), seed, stream)
        _, h = splitmix64(stream ^ 0x5851F42D4C957F2D)
        py = Xoshiro(seed ^ h)
        chk.true("stream (%d,%d)" % (seed, stream),
                 all(L.sl_rng_u64(ctypes.byref(r)) == py.next() for _ in range(100)))

    # moments of the normal deviates (a sanity check of the transform)
    r = CRng()
    L.sl_rng_seed(ctypes.byref(r), 99)
    xs = [L.sl_rng_normal(ctypes.byref(r)) for _ in range(200000)]
    mean = sum(xs) / len(xs)
    var = sum((x - mean) ** 2 for x in xs) / len(xs)
    print("max |mean| of 2e5 normals %.4f, var %.4f" % (abs(mean), var))
    chk.true("normal mean ~ 0", abs(mean) < 0.01)
    chk.true("normal variance ~ 1", abs(var - 1) < 0.02)
    chk.report()


if __name__ == "__main__":
    main()
