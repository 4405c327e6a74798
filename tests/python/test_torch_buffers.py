"""SegLoss reuses its gradient and label buffers between calls only when nothing else
holds them: a gradient returned by an earlier call (kept in x.grad) is never
overwritten, and int64/uint8/int32 labels give the same value and gradient whether a
buffer is reused or fresh. Reference: the same loss on fresh modules (no reuse).
# sanitized: skip (loads libsegloss.so through ctypes)
"""
import numpy as np
import torch

import pyref  # noqa: F401  (paths)
import slref

from segloss.torch import SegLoss


def fresh(spec, x, y):
    """value and gradient from a new module: nothing to reuse"""
    xt = x.clone().requires_grad_(True)
    v = SegLoss(spec, threads=1)(xt, y)
    v.backward()
    return float(v), xt.grad.clone()


def main():
    chk = slref.Check("SegLoss buffer reuse")
    g = torch.Generator().manual_seed(3)
    shape = (2, 3, 9, 11, 7)
    xs = [torch.randn(shape, generator=g) * 3 for _ in range(3)]
    ys = [torch.randint(0, 3, (2, 9, 11, 7), generator=g) for _ in range(3)]
    spec = "dice+ce"
    loss = SegLoss(spec, threads=1)

    # 1. kept gradients: x0.grad must survive the later calls unchanged
    x0 = xs[0].clone().requires_grad_(True)
    loss(x0, ys[0]).backward()
    kept = x0.grad.clone()
    for x, y in zip(xs[1:], ys[1:]):
        xt = x.clone().requires_grad_(True)
        loss(xt, y).backward()
        v_ref, g_ref = fresh(spec, x, y)
        chk.close("gradient of a later call", xt.grad.numpy(), g_ref.numpy(), rtol=0, atol=0)
    chk.close("x0.grad after two more calls (not overwritten)", x0.grad.numpy(), kept.numpy(), rtol=0, atol=0)

    # 2. dropped gradients: the buffer is reused, and the results are still exact
    ptrs = []
    for i in range(3):
        xt = xs[i].clone().requires_grad_(True)
        v = loss(xt, ys[i])
        v.backward()
        v_ref, g_ref = fresh(spec, xs[i], ys[i])
        chk.close("value, call %d with reuse" % i, float(v), v_ref, rtol=0, atol=0)
        chk.close("gradient, call %d with reuse" % i, xt.grad.numpy(), g_ref.numpy(), rtol=0, atol=0)
        ptrs.append(loss._grad_buf.ctypes.data)
        del xt, v
    chk.true("the gradient buffer is reused once x.grad is dropped (%s)" % ptrs, ptrs[1] == ptrs[2])

    # 3. autograd adopts the buffer as x.grad (no copy); a second backward is refused clearly
    xt = xs[0].clone().requires_grad_(True)
    v = loss(xt, ys[0])
    v.backward(retain_graph=True)
    chk.true("x.grad is the module's gradient buffer (no copy)", xt.grad.data_ptr() == loss._grad_buf.ctypes.data)
    try:
        v.backward()
        chk.true("a second backward is refused", False)
    except RuntimeError as e:
        print("second backward ->", e)
        chk.true("a second backward names the problem", "second time" in str(e))
    del xt, v

    # 4. label dtypes through the reused conversion buffer; the user's labels untouched
    for dt in (torch.int64, torch.uint8, torch.int32, torch.int64):
        for i in range(2):
            y = ys[i].to(dt)
            before = y.clone()
            xt = xs[i].clone().requires_grad_(True)
            v = loss(xt, y)
            v.backward()
            v_ref, g_ref = fresh(spec, xs[i], ys[i])
            chk.close("value, labels %s, call %d" % (dt, i), float(v), v_ref, rtol=0, atol=0)
            chk.close("gradient, labels %s, call %d" % (dt, i), xt.grad.numpy(), g_ref.numpy(), rtol=0, atol=0)
            chk.true("labels %s unchanged by the call" % dt, torch.equal(y, before))
    # an int32 label tensor is used in place, never adopted as the module's buffer
    y32 = ys[0].to(torch.int32)
    loss(xs[0], y32)
    chk.true("int32 labels are not the module's buffer",
             loss.__dict__.get("_label_buf") is None or loss._label_buf.ctypes.data != y32.data_ptr())
    # out-of-range int64 labels still refused
    try:
        loss(xs[0], torch.full((2, 9, 11, 7), 2**40, dtype=torch.int64))
        chk.true("label 2^40 refused", False)
    except Exception as e:  # noqa: BLE001
        print("label 2^40 ->", type(e).__name__, e)
        chk.true("label 2^40 refused with a range message", "int32" in str(e))
    chk.report()


if __name__ == "__main__":
    main()
