"""segloss.torch.SegLoss as a module: dtypes and target forms, no gradient
under no_grad, per-term values and weights, state through state_dict /
pickle / deepcopy, bad inputs raising the mapped exception with the C message.
# sanitized: skip (loads libsegloss.so through ctypes)
"""
import copy
import pickle

import numpy as np
import torch

import pyref  # noqa: F401  (paths)
import lossref as R
import slref

import segloss
from segloss import errors
from segloss.torch import SegLoss, boundary_maps


def raises(chk, what, fn, exc, words=()):
    """fn() must raise exc whose message contains every word; prints the message."""
    try:
        fn()
    except exc as e:
        msg = str(e)
        print("%-44s -> %s: %s" % (what, type(e).__name__, msg))
        chk.true("%s: message %r lacks %s" % (what, msg, words), all(w in msg for w in words))
        return e
    except Exception as e:  # noqa: BLE001 (reported as the wrong exception)
        chk.true("%s: raised %s(%s), wanted %s" % (what, type(e).__name__, e, exc.__name__), False)
        return None
    chk.true("%s: raised nothing" % what, False)
    return None


def run(loss, x, y, **kw):
    xt = x.clone().requires_grad_(True)
    v = loss(xt, y, **kw)
    v.backward()
    return v, xt.grad


def main():
    chk = slref.Check("SegLoss module")
    torch.manual_seed(0)
    rng = np.random.default_rng(3)
    x32 = torch.randn(2, 3, 9, 10)
    y64 = torch.randint(0, 3, (2, 9, 10))
    loss = SegLoss("dice+ce", threads=2)
    v, g = run(loss, x32, y64)

    # Target forms: int64, int32, uint8, (N, 1, ...) labels and the one-hot float target agree.
    for what, y in (("int32", y64.int()), ("uint8", y64.to(torch.uint8)), ("(N,1,...)", y64[:, None]),
                    ("one-hot float", torch.nn.functional.one_hot(y64, 3).movedim(-1, 1).float())):
        v2, g2 = run(loss, x32, y)
        chk.close("target %s value" % what, float(v2), float(v), rtol=1e-6, atol=1e-7, group="target forms")
        chk.close("target %s grad" % what, g2, g, rtol=1e-5, atol=1e-8, group="target forms")

    # Logit dtypes: value and gradient in the logits' dtype, equal to the float32 result up to its rounding.
    for dt, tol in ((torch.float64, 1e-6), (torch.float16, 2e-3), (torch.bfloat16, 1.6e-2)):
        xd = x32.to(dt)
        vd, gd = run(loss, xd, y64)
        chk.true("%s: value dtype %s, grad dtype %s" % (dt, vd.dtype, gd.dtype), vd.dtype == dt and gd.dtype == dt)
        # the reference point is the float32 result at the rounded logits
        vr, gr = run(loss, xd.float(), y64)
        chk.close("%s value" % dt, float(vd), float(vr), rtol=tol, atol=tol, group="dtype " + str(dt))
        chk.close("%s grad" % dt, gd.double(), gr.to(dt).double(), rtol=tol, atol=tol * float(gr.abs().max()),
                  group="dtype " + str(dt))
    # float64 logits against the float64 reference (dice + ce)
    import test_loss_ce as TC
    import test_loss_dice as TD
    xd = x32.double()
    v64, g64 = run(loss, xd, y64)
    rv, rg = R.reference(lambda a, t, C: TD.ref_dice(a, t, C) + TC.ref_ce(a, t, C), xd.float().numpy(), y64.numpy(), 3, {})
    chk.close("float64 logits value vs reference", float(v64), rv, rtol=2e-6, atol=1e-7)
    chk.close("float64 logits grad vs reference", g64.numpy(), rg, rtol=1e-4, atol=5e-5 * np.abs(rg).max())

    # No gradient computed under no_grad or for logits that do not require one.
    seen = []
    inner = loss._evaluate
    loss._evaluate = lambda *a: (seen.append(a[3]), inner(*a))[1]
    with torch.no_grad():
        vn = loss(x32.clone().requires_grad_(True), y64)
    vf = loss(x32, y64)
    loss(x32.clone().requires_grad_(True), y64)
    del loss._evaluate
    chk.true("want_grad per call %s" % seen, seen == [False, False, True])
    chk.true("no_grad value has no graph", vn.grad_fn is None and vf.grad_fn is None)
    chk.close("no_grad value", float(vn), float(v), rtol=0, atol=0)

    # grad_output scales the kept gradient; a second use of the graph after a new forward still
    # holds its own gradient.
    xa = x32.clone().requires_grad_(True)
    va = loss(xa, y64)
    loss(x32 * 2, y64)          # another forward in between
    (va * -2.5).backward()
    chk.close("grad_output scaling", xa.grad, -2.5 * g, rtol=1e-6, atol=1e-9)

    # Per-term values and weights.
    tv = loss.term_values()
    d = float(SegLoss("dice")(x32, y64))
    c = float(SegLoss("ce")(x32, y64))
    loss(x32, y64)
    tv = loss.term_values()
    chk.true("term names %s" % list(tv), list(tv) == ["dice", "ce"] and loss.term_names == ["dice", "ce"])
    chk.close("term value dice", tv["dice"], d, rtol=1e-6, atol=1e-7, group="terms")
    chk.close("term value ce", tv["ce"], c, rtol=1e-6, atol=1e-7, group="terms")
    loss.set_weight("ce", 0.25)
    loss.set_weight(0, 2.0)
    chk.close("weighted value", float(loss(x32, y64)), 2 * d + 0.25 * c, rtol=1e-6, atol=1e-7, group="terms")
    chk.true("weights %s" % loss.weights, loss.weights == [2.0, 0.25])
    dup = SegLoss("dice+0.5*dice(batch=true)")
    dup(x32, y64)
    chk.true("duplicate names %s" % list(dup.term_values()), list(dup.term_values()) == ["dice#0", "dice#1"])
    raises(chk, "set_weight NaN", lambda: loss.set_weight(1, float("nan")), ValueError, ["not finite"])
    raises(chk, "set_weight unknown term", lambda: loss.set_weight("focal", 1), ValueError, ["focal", "dice, ce"])
    raises(chk, "set_weight ambiguous term", lambda: dup.set_weight("dice", 1), ValueError, ["more than one"])
    raises(chk, "set_weight index", lambda: loss.set_weight(5, 1), IndexError, ["out of range"])

    # State: adaptive_dice's running averages and the weights travel in state_dict, pickle, deepcopy.
    ad = SegLoss("adaptive_dice+0.5*ce", threads=1).train()
    for k in range(3):
        ad(torch.randn(2, 3, 9, 10), torch.randint(0, 3, (2, 9, 10)))
    ad.set_weight(1, 0.75)
    xn, yn = torch.randn(2, 3, 9, 10), torch.randint(0, 3, (2, 9, 10))
    copies = {"deepcopy": copy.deepcopy(ad), "pickle": pickle.loads(pickle.dumps(ad))}
    fresh = SegLoss("adaptive_dice+0.5*ce", threads=1).train()
    fresh.load_state_dict(ad.state_dict())
    copies["state_dict"] = fresh
    buf = __import__("io").BytesIO()
    torch.save(ad.state_dict(), buf)
    buf.seek(0)
    fresh2 = SegLoss("adaptive_dice+0.5*ce", threads=1).train()
    fresh2.load_state_dict(torch.load(buf))
    copies["torch.save"] = fresh2
    want = [float(ad(xn, yn)), float(ad(xn, yn))]
    for what, m in copies.items():
        got = [float(m(xn, yn)), float(m(xn, yn))]
        chk.close("state round trip %s" % what, got, want, rtol=0, atol=0, group="state round trips")
        chk.true("%s weights %s" % (what, m.weights), m.weights == [1.0, 0.75])
    plain = SegLoss("adaptive_dice+0.5*ce", threads=1).train()
    chk.true("state matters (a fresh loss differs)", float(plain(xn, yn)) != want[0])
    raises(chk, "state of another spec", lambda: SegLoss("dice+ce").load_state_dict(ad.state_dict()),
           RuntimeError, ["adaptive_dice+0.5*ce", "dice+ce"])
    raises(chk, "corrupt state bytes", lambda: SegLoss("adaptive_dice+0.5*ce").set_extra_state(
        {"spec": "adaptive_dice+0.5*ce", "weights": [1, 1], "state": b"garbage"}), ValueError, [])

    # Bad inputs: the mapped exception with the C library's message where the C code decides.
    raises(chk, "unknown loss", lambda: SegLoss("dise+ce"), ValueError, ["dise"])
    raises(chk, "bad key value", lambda: SegLoss("tversky(alpha=-1)"), ValueError, ["alpha"])
    raises(chk, "spec syntax", lambda: SegLoss("dice+(ce"), ValueError, [])
    raises(chk, "spec not a string", lambda: SegLoss(3), TypeError, ["string"])
    raises(chk, "label out of range", lambda: loss(x32, torch.full((2, 9, 10), 3)), segloss.errors.RangeError,
           ["label", "3"])
    xnan = x32.clone()
    xnan[1, 2, 3, 4] = float("nan")
    raises(chk, "NaN logits", lambda: loss(xnan, y64), errors.NonFiniteError, [])
    raises(chk, "target shape", lambda: loss(x32, y64[:, :8]), ValueError, ["(2, 9, 10)", "(2, 8, 10)"])
    raises(chk, "soft target shape", lambda: loss(x32, torch.rand(2, 2, 9, 10)), ValueError, ["(2, 3, 9, 10)"])
    raises(chk, "float labels", lambda: loss(x32, y64.float()), ValueError, ["integer"])
    raises(chk, "integer logits", lambda: loss(y64[:, None].expand(2, 3, 9, 10), y64), TypeError, ["floating"])
    raises(chk, "logits 2-D", lambda: loss(x32[:, :, 0, 0], y64[:, 0, 0]), ValueError, ["(N, C, spatial...)"])
    raises(chk, "label beyond int32", lambda: loss(x32, torch.full((2, 9, 10), 2**40)), ValueError, ["int32"])
    raises(chk, "device", lambda: SegLoss("dice+ce", backend="c")(x32.to("meta"), y64), NotImplementedError, ["backend", "meta", "CPU"])
    raises(chk, "target device", lambda: loss(x32, y64.to("meta")), NotImplementedError, ["backend"])
    raises(chk, "threads", lambda: SegLoss("dice", threads=0), ValueError, ["threads"])
    raises(chk, "spacing length", lambda: SegLoss("boundary", spacing=(1, 2, 3))(x32, y64), ValueError, ["spacing"])
    raises(chk, "bad dist shape", lambda: SegLoss("boundary")(x32, y64, dist=torch.zeros(2, 3, 9, 9)),
           ValueError, ["dist"])
    xsoft = torch.rand(2, 3, 9, 10)
    raises(chk, "soft target outside [0, 1]", lambda: loss(x32, xsoft * 3), ValueError, [])
    e = raises(chk, "C message carried", lambda: loss(x32, torch.full((2, 9, 10), 7)), segloss.Error, [])
    chk.true("C status carried", e is not None and e.status == 4)

    # boundary_maps gives the maps the boundary loss computes itself.
    import boundaryref as B
    yb = torch.from_numpy(B.blobby_labels(rng, 2, 3, (14, 15)))
    xb = torch.randn(2, 3, 14, 15)
    for sp in (None, (2.0, 0.5)):
        bl = SegLoss("boundary", spacing=sp)
        maps = boundary_maps(yb, 3, spacing=sp, threads=1)
        import test_loss_boundary as TB
        chk.close("boundary_maps vs LIVIAETS-style maps %s" % (sp,), maps.numpy(), TB.ref_maps(yb.numpy(), 3, sp),
                  rtol=1e-5, atol=1e-5, group="boundary_maps")
        va, ga = run(bl, xb, yb)
        vb, gb = run(bl, xb, yb, dist=maps)
        chk.close("boundary with dist=boundary_maps %s" % (sp,), [float(vb)] + list(gb.flatten()),
                  [float(va)] + list(ga.flatten()), rtol=1e-6, atol=1e-9, group="boundary dist")
    chk.true("repr %r" % SegLoss("dice", spacing=(1, 2), threads=3),
             repr(SegLoss("dice", spacing=(1, 2), threads=3)) == "SegLoss('dice', spacing=(1.0, 2.0), threads=3)")
    chk.report()


if __name__ == "__main__":
    main()
