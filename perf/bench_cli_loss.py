"""`segloss loss` through the command line against the same loss in-process, and against the cost no CLI can avoid.

Inputs: logits 2x4x128^3 float32 and a label map saved as int64 (what np.save of a torch label tensor gives), in a
temporary folder beside the build (BENCH_SHAPE=N,C,D,H,W to change). Three times, each the minimum of BENCH_REPS
rounds (default 5) taken in turn:
  - cli:        `segloss loss dice+ce --input X --target Y --grad G --threads T` as a subprocess (start-up, reading,
                the loss, writing the gradient file atomically with fsync, exit);
  - in-process: sl_loss_forward through ctypes on the same arrays (labels as int32), same thread count, gradient
                into a preallocated buffer;
  - write:      the unavoidable part: the gradient's bytes (header and data) written to a new file in the same
                folder, fsync'ed and renamed over the target, as the CLI's atomic writer does.
Prints "RATIO loss-cli dice+ce: X" with X = cli / (in-process + write): the brief's target is X <= 2.

    /usr/bin/python3 perf/bench_cli_loss.py     (SEGLOSS_BUILD=build by default)
"""
import os
import subprocess
import tempfile

import numpy as np

from benchlib import SHAPE, THREADS, LossCall, interleaved_min, slref

REPS = int(os.environ.get("BENCH_REPS", "5"))


def main():
    lib = slref.lib()
    exe = os.path.join(slref.BUILD, "segloss")
    rng = np.random.default_rng(0)
    x = rng.normal(0, 2, SHAPE).astype(np.float32)
    y = rng.integers(0, SHAPE[1], (SHAPE[0],) + SHAPE[2:])
    y32 = y.astype(np.int32)
    g = np.empty_like(x)
    with tempfile.TemporaryDirectory(dir=slref.BUILD) as d:
        xp, yp, gp, wp = (os.path.join(d, n) for n in ("x.npy", "y.npy", "g.npy", "w.npy"))
        np.save(xp, x)
        np.save(yp, y.astype(np.int64))
        cmd = [exe, "loss", "dice+ce", "--input", xp, "--target", yp, "--grad", gp, "--threads", str(THREADS)]
        lc = LossCall(lib, "dice+ce", x, y32, g)
        # the gradient file's bytes as the CLI writes them (numpy's header for float32 of this shape)
        with tempfile.TemporaryFile() as f:
            np.lib.format.write_array(f, g)
            f.seek(0)
            blob = f.read()

        def cli():
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)

        def write():
            tmp = wp + ".tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            try:
                view = memoryview(blob)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, wp)
            dfd = os.open(d, os.O_RDONLY)
            os.fsync(dfd)
            os.close(dfd)

        t_cli, t_in, t_w = interleaved_min([cli, lc.call, write], REPS)
        lc.free()
        same = np.array_equal(np.load(gp), g)
    print("segloss loss dice+ce, logits %s float32, labels int64, %d threads, minimum of %d rounds timed in turn"
          % ("x".join(map(str, SHAPE)), THREADS, REPS))
    print("cli %.4f s, in-process %.4f s, write+fsync+rename of %.1f MB %.4f s; CLI gradient equals in-process: %s"
          % (t_cli, t_in, len(blob) / 1e6, t_w, same))
    print("RATIO loss-cli dice+ce: %.2f (cli %.4f s / (in-process %.4f s + write %.4f s), threads %d; target <= 2)"
          % (t_cli / (t_in + t_w), t_cli, t_in, t_w, THREADS))


if __name__ == "__main__":
    main()
