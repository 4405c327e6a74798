"""Optimisers, gradient clipping and learning-rate schedules against torch.optim.

Adam, AdamW and SGD (plain, momentum, dampening, Nesterov, weight decay) on a
flat float32 array fed the same sequence of random gradients as a float64
PyTorch twin; clip_grad_norm_; OneCycleLR (lr and the cycled momentum / beta1)
and the poly schedule (LambdaLR). Parameters are compared after every step:
|diff| <= 1e-6 + 1e-5 |ref| (float32 update arithmetic against float64).

Loads libsegloss.so through ctypes -- sanitized: skip
"""
import ctypes
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
import slref  # noqa: E402

torch.set_default_dtype(torch.float64)
L = slref.lib()
chk = slref.Check("test_nn_optim")
rng = np.random.default_rng(7)
fp = ctypes.POINTER(ctypes.c_float)

ADAM, ADAMW, SGD = 0, 1, 2
CONST, ONECYCLE, POLY = 0, 1, 2


class Schedule(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_int), ("total_steps", ctypes.c_int64), ("pct_start", ctypes.c_double),
                ("div_factor", ctypes.c_double), ("final_div_factor", ctypes.c_double),
                ("cycle_momentum", ctypes.c_int), ("base_momentum", ctypes.c_double),
                ("max_momentum", ctypes.c_double), ("power", ctypes.c_double)]


class OptimConfig(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_int), ("lr", ctypes.c_double), ("beta1", ctypes.c_double),
                ("beta2", ctypes.c_double), ("eps", ctypes.c_double), ("weight_decay", ctypes.c_double),
                ("momentum", ctypes.c_double), ("dampening", ctypes.c_double), ("nesterov", ctypes.c_int),
                ("clip_norm", ctypes.c_double), ("schedule", Schedule)]


class Stats(ctypes.Structure):
    _fields_ = [("lr", ctypes.c_double), ("momentum", ctypes.c_double), ("grad_norm", ctypes.c_double),
                ("step", ctypes.c_int64)]


def schedule(kind=CONST, total=0, pct=0.3, div=25.0, final_div=1e4, cycle=1, base_m=0.85, max_m=0.95, power=0.9):
    return Schedule(kind, total, pct, div, final_div, cycle, base_m, max_m, power)


def config(kind=ADAM, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, wd=0.0, mom=0.0, damp=0.0, nest=0, clip=0.0, sched=None):
    return OptimConfig(kind, lr, b1, b2, eps, wd, mom, damp, nest, clip, sched or schedule())


L.sl_optim_create_flat.argtypes = [ctypes.POINTER(ctypes.c_void_p), fp, fp, ctypes.c_int64,
                                   ctypes.POINTER(OptimConfig), ctypes.c_char_p, ctypes.c_size_t]
L.sl_optim_step.argtypes = [ctypes.c_void_p, ctypes.POINTER(Stats)]
L.sl_optim_free.argtypes = [ctypes.c_void_p]
L.sl_optim_set_threads.argtypes = [ctypes.c_void_p, ctypes.c_int]
L.sl_lr_schedule_at.argtypes = [ctypes.POINTER(Schedule), ctypes.c_double, ctypes.c_double, ctypes.c_int64,
                             ctypes.POINTER(ctypes.c_double), ctypes.POINTER(ctypes.c_double)]
L.sl_nn_grad_norm.argtypes = [fp, ctypes.c_int64, ctypes.c_int, ctypes.POINTER(ctypes.c_double)]
L.sl_nn_clip_grad_norm.argtypes = [fp, ctypes.c_int64, ctypes.c_double, ctypes.c_int, ctypes.POINTER(ctypes.c_double)]


def torch_pair(cfg, p):
    t = torch.tensor(p.astype(np.float64), requires_grad=True)
    s = cfg.schedule
    if cfg.kind == SGD:
        opt = torch.optim.SGD([t], lr=cfg.lr, momentum=cfg.momentum, dampening=cfg.dampening,
                              weight_decay=cfg.weight_decay, nesterov=bool(cfg.nesterov))
    else:
        cls = torch.optim.Adam if cfg.kind == ADAM else torch.optim.AdamW
        opt = cls([t], lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, weight_decay=cfg.weight_decay)
    sched = None
    if s.kind == ONECYCLE:
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=s.total_steps,
                                                    pct_start=s.pct_start, div_factor=s.div_factor,
                                                    final_div_factor=s.final_div_factor,
                                                    cycle_momentum=bool(s.cycle_momentum),
                                                    base_momentum=s.base_momentum, max_momentum=s.max_momentum)
    elif s.kind == POLY:
        total, power = s.total_steps, s.power
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: (1 - min(k, total) / total) ** power)
    return t, opt, sched


def run_case(name, cfg, steps=12, n=1000, gscale=1.0, threads=1):
    p = rng.standard_normal(n).astype(np.float32)
    g = np.zeros(n, np.float32)
    handle = ctypes.c_void_p()
    msg = ctypes.create_string_buffer(256)
    rc = L.sl_optim_create_flat(ctypes.byref(handle), p.ctypes.data_as(fp), g.ctypes.data_as(fp), n,
                                ctypes.byref(cfg), msg, 256)
    if not chk.true("%s: create (%d: %s)" % (name, rc, msg.value), rc == 0):
        return
    L.sl_optim_set_threads(handle, threads)
    t, opt, sched = torch_pair(cfg, p)
    st = Stats()
    for k in range(steps):
        gk = (rng.standard_normal(n) * gscale).astype(np.float32)
        g[:] = gk
        t.grad = torch.tensor(gk.astype(np.float64))
        want_norm = None
        if cfg.clip_norm > 0:
            want_norm = float(torch.nn.utils.clip_grad_norm_([t], cfg.clip_norm))
        group = opt.param_groups[0]
        want_lr = group["lr"]
        want_m = group["betas"][0] if cfg.kind != SGD else group["momentum"]
        opt.step()
        if sched:
            sched.step()
        rc = L.sl_optim_step(handle, ctypes.byref(st))
        chk.true("%s step %d rc" % (name, k), rc == 0)
        chk.close("%s step %d params" % (name, k), p, t.detach().numpy(), rtol=1e-5, atol=1e-6, group=name)
        chk.close("%s step %d lr" % (name, k), st.lr, want_lr, rtol=1e-12, atol=1e-15, group="schedule lr")
        chk.close("%s step %d momentum" % (name, k), st.momentum, want_m, rtol=1e-12, atol=1e-15,
                  group="schedule momentum")
        chk.true("%s step count" % name, st.step == k + 1)
        if want_norm is not None:
            chk.close("%s step %d grad norm" % (name, k), st.grad_norm, want_norm, rtol=1e-6, atol=0, group="grad_norm")
            chk.close("%s step %d clipped grads" % (name, k), g, t.grad.numpy(), rtol=1e-6, atol=1e-7, group="clip")
    L.sl_optim_free(handle)


run_case("adam", config(ADAM, lr=1e-2))
run_case("adam_wd", config(ADAM, lr=1e-2, wd=0.1, b1=0.8, b2=0.99, eps=1e-6), threads=2)
run_case("adamw", config(ADAMW, lr=1e-2, wd=0.05))
run_case("sgd", config(SGD, lr=0.1))
run_case("sgd_momentum", config(SGD, lr=0.05, mom=0.9, wd=1e-3), threads=2)
run_case("sgd_dampening", config(SGD, lr=0.05, mom=0.8, damp=0.3))
run_case("sgd_nesterov", config(SGD, lr=0.05, mom=0.9, nest=1, wd=1e-2))
run_case("adam_clip", config(ADAM, lr=1e-2, clip=3.0), gscale=1.0)   # norm ~31: clipped
run_case("sgd_clip_noop", config(SGD, lr=0.1, clip=1e3), gscale=1.0)  # norm ~31: not clipped
run_case("adam_onecycle", config(ADAM, lr=1e-2, sched=schedule(ONECYCLE, total=30)), steps=30)
run_case("adamw_onecycle_nocycle", config(ADAMW, lr=1e-2, wd=1e-2, sched=schedule(ONECYCLE, total=25, pct=0.25, cycle=0)), steps=25)
run_case("sgd_onecycle", config(SGD, lr=0.1, mom=0.9, sched=schedule(ONECYCLE, total=20, pct=0.4, div=10, final_div=100)), steps=20)
run_case("adam_poly", config(ADAM, lr=1e-2, sched=schedule(POLY, total=15)), steps=15)
run_case("sgd_poly", config(SGD, lr=0.1, mom=0.99, nest=1, sched=schedule(POLY, total=10, power=0.9)), steps=10)

# the schedule function alone, over a long run and past its end
for total, pct in [(100, 0.3), (1000, 0.1), (7, 0.5)]:
    t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([t], lr=0.1, momentum=0.9)
    sch = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=total, pct_start=pct)
    lrs, ms = [], []
    for k in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        ms.append(opt.param_groups[0]["momentum"])
        opt.step()
        if k < total - 1:
            sch.step()
    s = schedule(ONECYCLE, total=total, pct=pct)
    got_lr, got_m = [], []
    for k in range(total + 3):
        lr, m = ctypes.c_double(), ctypes.c_double()
        rc = L.sl_lr_schedule_at(ctypes.byref(s), 0.1, 0.9, k, ctypes.byref(lr), ctypes.byref(m))
        got_lr.append(lr.value)
        got_m.append(m.value)
    chk.close("onecycle(%d, %g) lr" % (total, pct), got_lr[:total], lrs, rtol=1e-12, atol=1e-17, group="schedule lr")
    chk.close("onecycle(%d, %g) momentum" % (total, pct), got_m[:total], ms, rtol=1e-12, atol=0, group="schedule momentum")
    chk.true("onecycle past the end keeps the final lr", got_lr[total:] == [got_lr[total - 1]] * 3)
    chk.close("onecycle(%d) final lr = lr/div/final_div" % total, got_lr[total - 1], 0.1 / 25 / 1e4, rtol=1e-9, atol=0)
s = schedule(POLY, total=50, power=0.9)
got = []
for k in range(53):
    lr = ctypes.c_double()
    L.sl_lr_schedule_at(ctypes.byref(s), 0.01, 0.0, k, ctypes.byref(lr), None)
    got.append(lr.value)
want = [0.01 * (1 - min(k, 50) / 50) ** 0.9 for k in range(53)]
chk.close("poly lr", got, want, rtol=1e-14, atol=0, group="schedule lr")

# gradient norm and clipping on their own
for n in [1, 17, 100000]:
    g = rng.standard_normal(n).astype(np.float32) * 3
    out = ctypes.c_double()
    L.sl_nn_grad_norm(g.ctypes.data_as(fp), n, 2, ctypes.byref(out))
    chk.close("grad norm n=%d" % n, out.value, np.linalg.norm(g.astype(np.float64)), rtol=1e-12, atol=0, group="grad_norm")
    tg = torch.tensor(g.astype(np.float64), requires_grad=True)
    tg.grad = tg.detach().clone()
    torch.nn.utils.clip_grad_norm_([tg], 1.0)
    c = g.copy()
    rc = L.sl_nn_clip_grad_norm(c.ctypes.data_as(fp), n, 1.0, 1, ctypes.byref(out))
    chk.close("clip n=%d" % n, c, tg.grad.numpy(), rtol=1e-6, atol=1e-8, group="clip")
g = np.array([1.0, np.nan, 2.0], np.float32)
rc = L.sl_nn_clip_grad_norm(g.ctypes.data_as(fp), 3, 1.0, 1, None)
chk.true("clip with NaN gives SL_ENONFINITE (5), got %d" % rc, rc == 5 and g[0] == 1.0 and g[2] == 2.0)

# invalid configurations are refused with a message
p = np.zeros(4, np.float32)
for what, cfg in [("nesterov without momentum", config(SGD, nest=1)),
                  ("negative lr", config(ADAM, lr=-1)),
                  ("beta1 = 1", config(ADAM, b1=1.0)),
                  ("onecycle without total_steps", config(ADAM, sched=schedule(ONECYCLE, total=0))),
                  ("onecycle with an empty phase", config(ADAM, sched=schedule(ONECYCLE, total=3, pct=0.3))),
                  ("poly with negative power", config(ADAM, sched=schedule(POLY, total=5, power=-1))),
                  ("unknown kind", config(7))]:
    h = ctypes.c_void_p()
    msg = ctypes.create_string_buffer(256)
    rc = L.sl_optim_create_flat(ctypes.byref(h), p.ctypes.data_as(fp), p.ctypes.data_as(fp), 4, ctypes.byref(cfg), msg, 256)
    chk.true("%s: SL_EINVAL (1) with a message, got %d '%s'" % (what, rc, msg.value.decode()),
             rc == 1 and len(msg.value) > 0 and not h.value)
chk.report()
