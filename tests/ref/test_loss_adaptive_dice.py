"""adaptive_dice against a PyTorch reference written from docs/losses-region.md:
a weighted Dice loss Σ_c w_c (1 − D_c) / Σ_c w_c whose weights follow an exponential moving
average h_c of each class's Dice loss (the mean over the batch of 1 − D_c), normalised to
sum K (the number of included classes): w_c = K·h_c / Σ h. Stateful: only a training
forward updates h (the first sets it to the current value, later ones h ← m·h + (1 − m)·cur),
and then uses the updated h; an evaluation forward uses h as it is, or weights 1 without
history. The weights are constants for the gradient.

The CLI part runs everywhere (each CLI call is a fresh loss: one step at most). The
sequence part keeps one loss object across forwards through ctypes, so it is skipped
under the sanitizers (the sanitized library cannot be loaded into Python); the same code
paths are covered there by the CLI part."""
import ctypes as c

import numpy as np
import torch

import lossref as R
import regionref as RR
import slref


def group_losses(x, target, C, activation, include_background, batch, smooth_nr, smooth_dr, ignore_index):
    s = RR.sums(x, target, C, activation, ignore_index, batch)
    return 1 - RR.dice_score(s, smooth_nr, smooth_dr)


def weights_of(h, C, include_background):
    first = 1 if (not include_background and C > 1) else 0
    if h is None or torch.isnan(h[first:]).any() or not h[first:].sum() > 0:
        return torch.ones(C)
    return (C - first) * h / h[first:].sum()


def ema(h, cur, momentum):
    return cur.clone() if h is None else momentum * h + (1 - momentum) * cur


def ref_adaptive(x, target, C, activation="auto", include_background=True, batch=False, smooth_nr=1e-5,
                 smooth_dr=1e-5, ignore_index=None, momentum=0.9, _h=None, _training=False):
    l = group_losses(x, target, C, activation, include_background, batch, smooth_nr, smooth_dr, ignore_index)
    cur = l.detach() if batch else l.detach().mean(0)
    h = ema(_h, cur, momentum) if _training else _h
    return RR.wnorm_groups(l, C, weights_of(h, C, include_background), include_background)


class Opts(c.Structure):
    _fields_ = [("spacing", c.c_double * 3), ("dist", c.c_void_p), ("threads", c.c_int), ("training", c.c_int)]


def sequence(chk, spec, params, C, kind, steps, seed):
    """One loss object, several forwards (True = training step), against the reference state machine."""
    lib = slref.lib()
    msg = c.create_string_buffer(512)
    loss = c.c_void_p()
    assert lib.sl_loss_create(spec.encode(), c.byref(loss), msg, 512) == 0, msg.value
    rng = np.random.default_rng(seed)
    h = None
    p = {k: v for k, v in params.items() if not k.startswith("_")}
    try:
        for i, training in enumerate(steps):
            x, y = R.make_inputs(rng, 2, C, (6, 7), kind)
            # make class C-1 hard in some steps, so the weights move
            if i % 2 and C > 1:
                x[:, C - 1] -= 3
            xx = np.ascontiguousarray(x, np.float32)
            d = R._Dims(2, C, 2, (c.c_int64 * 3)(6, 7, 1))
            if y.dtype.kind == "f":
                yy = np.ascontiguousarray(y, np.float32)
                t = R._Target(1, None, yy.ctypes.data)
            else:
                yy = np.ascontiguousarray(y, np.int32)
                t = R._Target(0, yy.ctypes.data, None)
            o = Opts((c.c_double * 3)(1, 1, 1), None, 0, 1 if training else 0)
            g = np.zeros_like(xx)
            v = c.c_double()
            st = lib.sl_loss_forward(loss, xx.ctypes.data_as(c.c_void_p), c.byref(d), c.byref(t), c.byref(o),
                                     c.byref(v), g.ctypes.data_as(c.c_void_p), msg, 512)
            if st != 0:
                chk.true("adaptive_dice sequence: %s" % msg.value.decode(), False)
                return
            rv, rg = R.reference(ref_adaptive, x, y, C, dict(p, _h=h, _training=training))
            label = "adaptive_dice sequence %s C=%d %s step %d (%s)" % (spec, C, kind, i,
                                                                       "train" if training else "eval")
            chk.close(label + " value", v.value, rv, rtol=2e-5, atol=1e-7, group="adaptive_dice sequence value")
            chk.close(label + " grad", g, rg, rtol=1e-4, atol=5e-5 * max(float(np.abs(rg).max()), 1e-12),
                      group="adaptive_dice sequence grad")
            if training:
                xt = torch.tensor(x.astype(np.float64))
                yt = torch.tensor(y.astype(np.float64)) if y.dtype.kind == "f" else torch.tensor(y)
                l = group_losses(xt, yt, C, p.get("activation", "auto"), p.get("include_background", True),
                                 p.get("batch", False), 1e-5, 1e-5, None)
                h = ema(h, l if p.get("batch", False) else l.mean(0), p.get("momentum", 0.9))
    finally:
        lib.sl_loss_free(loss)


def property_worse_weighs_more(chk):
    """After a training step the weights are proportional to the classes' losses, so the
    weighted loss is at least the plain mean (Σ L² / Σ L ≥ mean L), with equality only
    when every class does equally well."""
    rng = np.random.default_rng(4)
    with R.tmpdir() as tmp:
        x, y = R.make_inputs(rng, 2, 4, (8, 9), "labels")
        x[:, 3] -= 4  # class 3 badly predicted
        plain = R.value_cli("adaptive_dice", x, y, tmp)
        trained = R.value_cli("adaptive_dice", x, y, tmp, extra=("--training",))
        dice = R.value_cli("dice", x, y, tmp)
    chk.true("adaptive_dice without history equals dice (%.8g vs %.8g)" % (plain, dice), abs(plain - dice) < 1e-6)
    chk.true("adaptive_dice after a step weighs the worse class more: %.6g > %.6g" % (trained, plain),
             trained > plain + 1e-3)


def main():
    chk = slref.Check("adaptive_dice vs PyTorch")
    spec = lambda p: R.spec_of("adaptive_dice", p)
    variants = [
        {},
        {"include_background": False, "batch": True, "_channels": (4,)},
        {"smooth_nr": 0.0, "smooth_dr": 1.0, "ignore_index": 3, "_ignore": 3, "_kinds": ("labels",), "_channels": (2,)},
        {"_activation": "none", "_channels": (1, 4), "_kinds": ("labels",)},
        {"_activation": "sigmoid", "_channels": (3,), "_kinds": ("soft",)},
    ]
    R.run_matrix(chk, "adaptive_dice", spec, ref_adaptive, variants)
    # one training step through the CLI (--training): weights from the current losses;
    # no finite differences (each evaluation would be a fresh first step with other weights)
    train = [{"_channels": (2, 4)},
             {"include_background": False, "batch": True, "momentum": 0.3, "_channels": (4,), "_kinds": ("soft",)},
             {"_activation": "sigmoid", "_channels": (1, 3), "_kinds": ("labels",)}]
    ref_step = lambda *a, **k: ref_adaptive(*a, _training=True, **k)
    R.run_matrix(chk, "adaptive_dice training", spec, ref_step, train, fd=False, extra=("--training",))
    RR.edge_cases(chk, "adaptive_dice", "adaptive_dice", ref_adaptive)
    property_worse_weighs_more(chk)
    if not R.SANITIZED:
        steps = [True, True, False, False, True, True, False]
        sequence(chk, "adaptive_dice", {}, 4, "labels", steps, 1)
        sequence(chk, "adaptive_dice(momentum=0.5,include_background=false)",
                 {"momentum": 0.5, "include_background": False}, 4, "soft", steps, 2)
        sequence(chk, "adaptive_dice(batch=true,momentum=0)", {"batch": True, "momentum": 0.0}, 3, "labels",
                 steps, 3)
        sequence(chk, "adaptive_dice(activation=sigmoid)", {"activation": "sigmoid"}, 2, "soft", steps, 4)
        # evaluation forwards only: never any history, always the plain mean
        sequence(chk, "adaptive_dice", {}, 3, "labels", [False, False, False], 5)
    RR.bad_spec(chk, "adaptive_dice(momentum=1.5)", ["adaptive_dice", "momentum"])
    RR.bad_spec(chk, "adaptive_dice(weight=[1,2])", ["adaptive_dice", "weight"])
    RR.threads_identical(chk, "adaptive_dice")
    chk.report()


if __name__ == "__main__":
    main()
