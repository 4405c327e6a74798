"""Shared pieces of the region-loss reference tests (tests/ref/test_loss_<region loss>.py).

Plain PyTorch float64, written from docs/losses-region.md and the papers, independent of
the C code: masked probabilities and targets, the per-group soft counts, the two
reductions (MONAI's mean of w·L over included groups; the weight-normalised mean
Σ w L / Σ w), the three named edge cases, and bad-parameter checks through the CLI.
"""
import os

import numpy as np
import torch

import lossref as R
import slref


def masked(x, target, C, activation="auto", ignore_index=None):
    """p and g (N, C, ...) with ignored voxels zeroed, and the (N, 1, ...) mask."""
    p = R.probs(x, C, activation)
    g = R.onehot(target, C)
    m = R.valid_mask(target, ignore_index, C)
    return p * m, g * m, m


def sums(x, target, C, activation="auto", ignore_index=None, batch=False):
    """Soft counts per (sample, class), or per class with batch=True."""
    p, g, m = masked(x, target, C, activation, ignore_index)
    axes = list(range(2, x.dim()))
    if batch:
        axes = [0] + axes
    cnt = (m * torch.ones_like(p)).sum(axes)
    return dict(tp=(p * g).sum(axes), sp=p.sum(axes), sg=g.sum(axes), sp2=(p * p).sum(axes),
                sg2=(g * g).sum(axes), cnt=cnt)


def dice_score(s, smooth_nr=1e-5, smooth_dr=1e-5, squared=False):
    den = s["sp2"] + s["sg2"] if squared else s["sp"] + s["sg"]
    return (2 * s["tp"] + smooth_nr) / (den + smooth_dr)


def mean_groups(l, C, weight=None, include_background=True):
    """MONAI's reduction: mean over included groups of w_c·L."""
    if weight is not None:
        l = l * torch.tensor(weight, dtype=torch.float64)
    if not include_background and C > 1:
        l = l[..., 1:]
    return l.mean()


def class_weights(target, C, weight, ignore_index=None):
    """A weight list as given, or inverse/median frequencies of the batch (0 for absent classes)."""
    if weight is None:
        return torch.ones(C)
    if not isinstance(weight, str):
        return torch.tensor(weight, dtype=torch.float64)
    g = R.onehot(target, C) * R.valid_mask(target, ignore_index, C)
    freq = g.sum([0] + list(range(2, g.dim())))
    total = R.valid_mask(target, ignore_index, C).sum()
    present = freq > 0
    if weight == "inverse":
        return torch.where(present, total / (C * freq.clamp(min=1e-300)), torch.zeros(C))
    med = freq[present].median() if present.sum() % 2 == 1 else freq[present].sort().values[
        present.sum() // 2 - 1: present.sum() // 2 + 1].mean()
    return torch.where(present, med / freq.clamp(min=1e-300), torch.zeros(C))


def wnorm_groups(l, C, w, include_background=True):
    """Σ_c w_c L_c / Σ_c w_c per sample (or pooled), then the mean over samples."""
    if not include_background and C > 1:
        l, w = l[..., 1:], w[1:]
    if not w.sum() > 0:
        return (l * 0).sum()  # no included class has weight: 0, no gradient
    return ((l * w).sum(-1) / w.sum()).mean()


def edge_cases(chk, name, spec, ref, params=None, channels=4):
    """The three named edge cases: a class absent from the target, every voxel one class,
    and a class empty in both prediction and target (softmax with C = 2, and one sigmoid
    channel). spec and params may be functions of C (e.g. for a weight list)."""
    spec_of = spec if callable(spec) else (lambda C: spec)
    params_of = params if callable(params) else (lambda C: dict(params or {}))
    rng = np.random.default_rng(11)
    with R.tmpdir() as tmp:
        C = channels
        x = rng.normal(0, 2, (2, C, 6, 7)).astype(np.float32)
        y = rng.integers(0, C, (2, 6, 7)).astype(np.int64)
        y[y == 1] = 0
        R.check_loss(chk, name + " empty-class", spec_of(C), ref, params_of(C), x, y, C, tmp)
        y = np.full((2, 6, 7), C - 1, np.int64)
        R.check_loss(chk, name + " one-class", spec_of(C), ref, params_of(C), x, y, C, tmp)
        # logits ±3: the argmax prediction of class 1 is empty (p ≈ 0.0025); more extreme
        # logits leave only float32 rounding in the tiny gradient of the softmax
        x = np.full((1, 2, 5, 5), -3.0, np.float32)
        x[:, 0] = 3.0
        y = np.zeros((1, 5, 5), np.int64)
        R.check_loss(chk, name + " both-empty", spec_of(2), ref, params_of(2), x, y, 2, tmp)
        # binary: foreground absent from the target and (almost) from the prediction
        x = np.full((1, 1, 5, 5), -6.0, np.float32)
        R.check_loss(chk, name + " both-empty-sigmoid", spec_of(1), ref, params_of(1), x, y, 1, tmp)


def bad_spec(chk, spec, words, rc=(2,)):
    """The CLI refuses the spec with the given exit code and one line naming the problem."""
    code, out, err = slref.cli(["loss", spec, "--input", "unused.npy", "--target", "unused.npy"])
    lines = [l for l in err.strip().splitlines() if l]
    ok = code in rc and len(lines) == 1 and all(w in lines[0] for w in words)
    chk.true("bad parameters %r: exit %d, message %r" % (spec, code, err.strip()), ok)


def bad_run(chk, spec, x, y, words, rc=(1,)):
    """The spec parses but the forward refuses these inputs (exit 1, one line)."""
    with R.tmpdir() as tmp:
        xp, yp = os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")
        np.save(xp, x)
        np.save(yp, y)
        code, out, err = slref.cli(["loss", spec, "--input", xp, "--target", yp])
    lines = [l for l in err.strip().splitlines() if l]
    ok = code in rc and len(lines) == 1 and all(w in lines[0] for w in words)
    chk.true("bad input for %r: exit %d, message %r" % (spec, code, err.strip()), ok)


def same_value(chk, what, spec_a, spec_b, channels=(1, 3), rtol=1e-6):
    """Two specs give the same value and gradient on random inputs (e.g. tversky(0.5, 0.5) = dice)."""
    rng = np.random.default_rng(5)
    with R.tmpdir() as tmp:
        for C in channels:
            for kind in ("labels", "soft"):
                x, y = R.make_inputs(rng, 2, C, (6, 7), kind)
                va, ga, ea = R.run_cli(spec_a, x, y, tmp)
                vb, gb, eb = R.run_cli(spec_b, x, y, tmp)
                if ea or eb:
                    chk.true("%s: %s" % (what, ea or eb), False)
                    continue
                chk.close("%s value C=%d %s" % (what, C, kind), va, vb, rtol=rtol, atol=1e-9, group=what)
                chk.close("%s grad C=%d %s" % (what, C, kind), ga, gb, rtol=1e-4,
                          atol=1e-6 * max(1e-12, float(np.abs(gb).max())), group=what)


def _forward(spec, x, y, fused):
    """(value, grad, error) through ctypes with the fused two-pass path on or off."""
    import ctypes as c
    lib = slref.lib()
    msg = c.create_string_buffer(512)
    loss = c.c_void_p()
    if lib.sl_loss_create(spec.encode(), c.byref(loss), msg, 512) != 0:
        return None, None, msg.value.decode()
    try:
        lib.sl_loss_set_fused(loss, 1 if fused else 0)
        x = np.ascontiguousarray(x, np.float32)
        d = R._Dims(x.shape[0], x.shape[1], x.ndim - 2, (c.c_int64 * 3)(*(list(x.shape[2:]) + [1] * (5 - x.ndim))))
        if y.dtype.kind == "f":
            yy = np.ascontiguousarray(y, np.float32)
            t = R._Target(1, None, yy.ctypes.data)
        else:
            yy = np.ascontiguousarray(y, np.int32)
            t = R._Target(0, yy.ctypes.data, None)
        g = np.zeros_like(x)
        v = c.c_double()
        st = lib.sl_loss_forward(loss, x.ctypes.data_as(c.c_void_p), c.byref(d), c.byref(t), None, c.byref(v),
                                 g.ctypes.data_as(c.c_void_p), msg, 512)
        return (v.value, g, None) if st == 0 else (None, None, msg.value.decode())
    finally:
        lib.sl_loss_free(loss)


def both_paths(chk, name, spec_fn, ref, variants, seed=21):
    """Softmax/sigmoid specs of region_finalize losses run the fused two-pass path by default;
    this evaluates each variant through the plain path as well (sl_loss_set_fused(0)) and
    compares both with the reference. ctypes only: skipped under the sanitizers."""
    if R.SANITIZED:
        return
    rng = np.random.default_rng(seed)
    for params in variants:
        p = {k: v for k, v in params.items() if not k.startswith("_")}
        act = params.get("_activation", "auto")
        for C in params.get("_channels", (1, 2, 4)):
            for kind in params.get("_kinds", ("labels", "soft")):
                for N, spatial in ((2, (6, 7)), (1, (3, 4, 5))):
                    x, y = R.make_inputs(rng, N, C, spatial, kind, activation=act,
                                         ignore_index=params.get("_ignore"))
                    spec = spec_fn(dict(params, activation=act))
                    rv, rg = R.reference(ref, x, y, C, dict(p, activation=act))
                    scale = max(float(np.abs(rg).max()), 1e-12)
                    for fused in (True, False):
                        v, g, err = _forward(spec, x, y, fused)
                        label = "%s %s %s x%s %s" % (name, "fused" if fused else "plain", spec, x.shape, kind)
                        if err:
                            chk.true("%s: %s" % (label, err), False)
                            continue
                        chk.close(label + " value", v, rv, rtol=2e-5, atol=1e-7, group=name + " paths value")
                        chk.close(label + " grad", g, rg, rtol=1e-4, atol=5e-5 * scale, group=name + " paths grad")


def threads_identical(chk, spec, C=4, kind="labels"):
    """1 thread and 3 threads give bit-identical values and gradients (chunked partials added
    in a fixed order). Large enough for several chunks."""
    rng = np.random.default_rng(17)
    x, y = R.make_inputs(rng, 2, C, (40, 60, 50), kind)
    with R.tmpdir() as tmp:
        out = []
        for th in ("1", "3"):
            xp, yp, gp = (os.path.join(tmp, n) for n in ("x.npy", "y.npy", "g%s.npy" % th))
            np.save(xp, x)
            np.save(yp, y)
            rc, o, err = slref.cli(["loss", spec, "--input", xp, "--target", yp, "--grad", gp, "--threads", th])
            if rc != 0:
                chk.true("%s --threads %s: %s" % (spec, th, err.strip()), False)
                return
            out.append((o.strip(), np.load(gp)))
    chk.true("%s: 1 and 3 threads give the same value (%s vs %s)" % (spec, out[0][0], out[1][0]), out[0][0] == out[1][0])
    chk.true("%s: 1 and 3 threads give the same gradient" % spec, np.array_equal(out[0][1], out[1][1]))
