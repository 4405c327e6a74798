"""The package starts no OpenBLAS worker threads it does not use.

Each case runs in a fresh interpreter (OpenBLAS reads its thread count once,
when it is loaded) and reports the process's thread count
(/proc/self/task), OpenBLAS's own count (openblas_get_num_threads through
ctypes on the library mapped into the process), whether
OPENBLAS_NUM_THREADS is left in the environment, and a dice score from
segloss.metrics with a numpy matmul checked against a loop, so the
libraries still work.
"""
# sanitized: skip (loads libsegloss.so through ctypes)
import json
import os
import subprocess
import sys

import pyref  # noqa: F401  (paths)
import slref

PROBE = r"""
import ctypes, json, os, sys
PRE
import segloss.metrics
import numpy as np
p = np.zeros((1, 8, 8), np.uint8); p[0, 2:6, 2:6] = 1
g = np.zeros((1, 8, 8), np.uint8); g[0, 3:7, 2:6] = 1
rows = segloss.metrics.evaluate(p, g, metrics=["dice"], threads=1)
a = np.arange(12.0).reshape(3, 4); b = np.arange(8.0).reshape(4, 2)
loop = [[sum(a[i, k] * b[k, j] for k in range(4)) for j in range(2)] for i in range(3)]
blas = [l.split()[-1] for l in open("/proc/self/maps") if "openblas" in l and l.split()[-1].endswith(".so")]
n = ctypes.CDLL(blas[0]).openblas_get_num_threads() if blas else -1
print(json.dumps({"tasks": len(os.listdir("/proc/self/task")), "blas": n,
                  "env": "OPENBLAS_NUM_THREADS" in os.environ, "rows": str(rows)[:200],
                  "matmul": bool(np.array_equal(a @ b, np.array(loop)))}))
"""


def probe(pre="", **env_add):
    # OpenBLAS's own default: none of the variables it reads (OMP_NUM_THREADS is its last resort)
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS")}
    env.update(env_add)
    r = subprocess.run([sys.executable, "-c", PROBE.replace("PRE", pre)], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        return {"error": r.stderr.strip().splitlines()[-1:]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    chk = slref.Check("blas threads")
    cores = len(os.sched_getaffinity(0))
    # numpy alone: OpenBLAS starts its workers (one per core, the caller counts as one)
    base = probe("import numpy")
    # segloss first: numpy comes in through the package with one BLAS thread
    first = probe()
    # numpy first: the package leaves the BLAS as the user got it
    after = probe("import numpy as _np; _np.ones(3)")
    # the user's own choice wins
    chosen = probe(OPENBLAS_NUM_THREADS="2")
    print("cores %d; numpy first: %s; segloss first: %s; user OPENBLAS_NUM_THREADS=2: %s" % (cores, base, first, chosen))
    for name, r in (("numpy first", base), ("segloss first", first), ("numpy before segloss", after), ("user's count", chosen)):
        chk.true("%s: probe ran, dice and matmul work (%s)" % (name, r), "error" not in r and r["matmul"] and "dice" in r["rows"])
    if any("error" in r for r in (base, first, after, chosen)):
        chk.report()
    chk.true("segloss first: OpenBLAS at one thread (got %d)" % first["blas"], first["blas"] == 1)
    chk.true("segloss first: one thread in the process (got %d)" % first["tasks"], first["tasks"] == 1)
    chk.true("segloss first: OPENBLAS_NUM_THREADS not left in the environment", not first["env"])
    chk.true("numpy before segloss: OpenBLAS's count untouched (%d vs %d)" % (after["blas"], base["blas"]),
             after["blas"] == base["blas"] and after["tasks"] == base["tasks"])
    chk.true("user's OPENBLAS_NUM_THREADS=2 kept (got %d)" % chosen["blas"], chosen["blas"] == 2 and chosen["env"])
    if cores >= 2:
        # the point of it: numpy alone starts workers, segloss first does not
        # (one per core, up to the build's MAX_THREADS; the caller is one of them)
        chk.true("numpy alone starts BLAS workers here (%d threads, BLAS count %d, %d cores)" % (base["tasks"], base["blas"], cores),
                 2 <= base["blas"] <= cores and base["tasks"] == base["blas"])
    else:
        print("one core: OpenBLAS starts no workers even without the setting; the counts cannot differ")
    chk.report()


if __name__ == "__main__":
    main()
