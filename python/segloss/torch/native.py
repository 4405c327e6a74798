"""The native PyTorch backend of SegLoss: the formulas of docs/losses.md written
in torch operations, so that the loss runs on the logits' own device (a GPU)
and autograd gives the gradient.

Every covered term is computed in two steps, as the C library's two fused
passes do:

1. `sums(inp)`: sums over voxels (tp, Σp, Σg per class, CE sums, class
   counts), differentiable where they depend on the scores;
2. `finish(inp, sums, red)`: the ratios, from those sums.

Between the two, with a process group, the sums of every term are gathered
into ONE flat vector and all-reduced (SUM) over the group, so that every rank
takes the ratios of the whole global batch. The gradient flows through the
rank's own sums only (S_local + (S_global - S_local).detach()); evaluate()
then multiplies it by the world size, so that DDP's averaging of the ranks'
gradients yields exactly the gradient of the single-process loss.

A term's finish() returns (value, kind): kind "global" means every rank
holds the loss of the global batch; kind "share" means the value is this
rank's share of it (a mean over samples divided by the GLOBAL sample count),
and the shares are summed over the ranks (one more small all-reduce of the
detached values) for the value that is returned.

This module does not load the C library: the spec is validated by the C
parser in _core.py first and re-read here (parse_spec); the host-side maps
of the boundary family (distance maps, connected components) come from the
C library through callbacks that _core.py puts on Inputs, or are passed in
precomputed (Inputs.premaps, keyed by term index: SegLoss.target_maps and
forward(maps=)); MAPPED names the terms that have such a map (target_map()).
"""
import math
import re

import torch
import torch.nn.functional as F

# Keys a native term understands; any other key given in the spec is refused
# (the C path accepts more; native coverage is stated in docs/python.md).
_ACT = ("activation", "ignore_index")
_REGION = _ACT + ("include_background", "batch", "smooth_nr", "smooth_dr")
KEYS = {
    "ce": _ACT + ("weight", "label_smoothing"),
    "wce": _ACT + ("weight", "label_smoothing"),
    "bce": _ACT + ("weight", "pos_weight", "label_smoothing"),
    "dice": _REGION + ("weight", "squared", "log", "soft_label", "pool_classes"),
    "iou": _REGION + ("weight", "squared", "log", "soft_label", "pool_classes"),
    "logcosh_dice": _REGION + ("weight", "squared", "log", "soft_label", "pool_classes"),
    "tversky": _REGION + ("weight", "alpha", "beta", "soft_label", "pool_classes"),
    "focal_tversky": _REGION + ("weight", "alpha", "beta", "gamma", "soft_label", "pool_classes"),
    "gdice": _REGION + ("w_type", "normalize"),
    "wdice": _REGION + ("weight",),
    "adaptive_dice": _REGION + ("momentum",),
    "asym": _REGION + ("weight", "beta", "pool_classes"),
    "focal_dice": _REGION + ("weight", "beta"),
    "sensspec": _ACT + ("include_background", "batch", "smooth_dr", "weight", "r"),
    "mcc": _REGION + ("weight",),
    "pgdice": _REGION + ("w_type", "k", "normalize"),
    "focal": _ACT + ("gamma", "alpha", "normalized", "reduced_threshold"),
    "topk": _ACT + ("k",),
    "ohem": _ACT + ("thresh", "min_kept"),
    "gwdice": _ACT + ("batch", "smooth_nr", "smooth_dr", "M"),
    "combo": _REGION + ("alpha", "beta"),
    "dpce": ("activation", "lambda"),
    "lovasz": _ACT + ("per_image", "classes"),
    "hausdorff_dt": ("activation", "alpha", "include_background"),
    "blob": ("activation", "include_background", "connectivity", "smooth_nr", "smooth_dr"),
    "cldice": _REGION + ("pool_classes", "weight", "iters", "auto_iters"),
    "edge_dice": _REGION + ("weight", "alpha", "padding"),
    "ssim": _ACT + ("include_background", "weight", "window", "sigma", "padding"),
    "hausdorff_er": _ACT + ("include_background", "weight", "alpha", "erosions"),
    "unified_focal": _ACT + ("batch", "smooth_nr", "smooth_dr", "variant", "lambda", "delta", "gamma"),
    "boundary_aware": ("activation", "width", "p_boundary", "p_inner"),
    "boundary": ("activation", "idc"),
    "log_hausdorff_dt": ("activation", "alpha", "include_background"),
    "exp_log": _REGION + ("gamma_dice", "gamma_ce", "w_dice", "w_ce"),
}

DEFAULTS = {
    "activation": "auto", "ignore_index": None, "include_background": True, "batch": False,
    "smooth_nr": 1e-5, "smooth_dr": 1e-5, "weight": None, "squared": False, "log": False,
    "label_smoothing": 0.0, "pos_weight": 1.0, "alpha": 0.3, "beta": 0.7, "gamma": 0.75,
    "w_type": "square", "momentum": 0.9, "idc": None, "r": 0.05, "k": 2.5, "thresh": 0.7, "min_kept": 0.1,
    "M": None, "per_image": False, "classes": "present", "lambda": 1.0, "width": 2.0, "p_boundary": 2.0, "p_inner": 1.0,
}
# defaults that differ between losses sharing a key
LOSS_DEFAULTS = {"hausdorff_er": {"alpha": 2.0, "erosions": 10.0},
                 "ssim": {"window": 11.0, "sigma": 1.5, "padding": "valid"},
                 "edge_dice": {"alpha": 0.7, "padding": "zero"},
                 "cldice": {"smooth_nr": 1.0, "smooth_dr": 1.0, "pool_classes": False, "iters": 3},
                 "blob": {"include_background": False, "connectivity": "full"},
                 "hausdorff_dt": {"alpha": 2.0, "include_background": False},
                 "log_hausdorff_dt": {"alpha": 2.0, "include_background": False},
                 "exp_log": {"smooth_nr": 1.0, "smooth_dr": 1.0, "gamma_dice": 0.3, "gamma_ce": 0.3,
                             "w_dice": 0.8, "w_ce": 0.2},
                 "unified_focal": {"lambda": 0.5, "gamma": 0.5, "delta": 0.6, "variant": "asymmetric"},
                 "topk": {"k": 10.0}, "combo": {"alpha": 0.5, "beta": 0.5}, "asym": {"beta": 1.5}, "focal_dice": {"beta": 2.0}, "focal": {"gamma": 2.0, "alpha": None},
                 "wce": {"weight": "inverse"}, "bce": {"activation": "sigmoid"}}


class Unsupported(Exception):
    """A spec term or key the native path does not compute (message names it)."""


class Inputs:
    """The logits, the target and what the terms derive from them, cached per
    activation / ignore_index so that a compound computes softmax once."""

    def __init__(self, x, labels, soft, maps, label_distance=None, spacing=None, components=None, weights=None):
        self.x = x                      # (N, C, spatial...) floating
        self.weights = weights          # (N, 1, spatial...) per-voxel weights like x (mask=), or None
        self.C = x.shape[1]
        self.labels = labels            # (N, spatial...) int64, or None
        self.soft = soft                # (N, C, spatial...) like x, or None
        self.maps = maps                # (N, C, spatial...) signed distances, or None
        self.axes = tuple(range(2, x.dim()))
        # hard label maps (M, ..., spatial) int32 on the device -> distances to the
        # nearest voxel of another label, same shape, on the device (SegLoss: the C EDT on the host)
        self.label_distance = label_distance
        self.spacing = spacing if spacing is not None else (1.0,) * len(self.axes)
        # boolean masks (..., spatial) -> connected-component labels (int64, same device)
        self.components = components
        # {term index: map} precomputed from the target alone (SegLoss.target_maps, e.g. in
        # DataLoader workers), on x's device; a term with a map there skips its host computation
        self.premaps = {}
        self._cache = {}

    def act(self, activation):
        if activation == "auto":
            return "softmax" if self.C > 1 else "sigmoid"
        return activation

    def probs(self, activation):
        a = self.act(activation)
        key = ("p", a)
        if key not in self._cache:
            x = self.x
            self._cache[key] = torch.softmax(x, 1) if a == "softmax" else torch.sigmoid(x) if a == "sigmoid" else x
        return self._cache[key]

    def onehot(self):
        """g (N, C, ...): one-hot of the labels (label 1 = foreground for one
        channel; ignored or out-of-range labels give all-zero rows), or the soft target."""
        if self.soft is not None:
            return self.soft
        if "g" not in self._cache:
            lab = self.labels.unsqueeze(1)
            if self.C == 1:
                g = (lab == 1)
            else:
                g = lab == torch.arange(self.C, device=lab.device).view((1, self.C) + (1,) * len(self.axes))
            self._cache["g"] = g.to(self.x.dtype)
        return self._cache["g"]

    def valid(self, ignore_index):
        """(N, 1, ...) 0/1 float: the voxels that are not ignore_index, mask= left out
        (ssim, edge_dice, hausdorff_er and cldice set p = g = 0 there before their maps)."""
        key = ("v", ignore_index)
        if key not in self._cache:
            if ignore_index is None or self.labels is None:
                shape = (self.x.shape[0], 1) + tuple(self.x.shape[2:])
                v = torch.ones(shape, dtype=self.x.dtype, device=self.x.device)
            else:
                v = (self.labels != int(ignore_index)).unsqueeze(1).to(self.x.dtype)
            self._cache[key] = v
        return self._cache[key]

    def unweighted(self, ignore_index):
        """True when mask(ignore_index) is all ones (no mask=, no ignore_index on a label map)."""
        return self.weights is None and (ignore_index is None or self.labels is None)

    def sample(self, n):
        """The same inputs restricted to sample n (a batch of one), for reduction="none"."""
        def one(t):
            return None if t is None else t[n:n + 1]
        out = Inputs(self.x[n:n + 1], one(self.labels), one(self.soft), one(self.maps), self.label_distance,
                     self.spacing, self.components, one(self.weights))
        out.premaps = {k: v[n:n + 1] for k, v in self.premaps.items()}
        return out

    def mask(self, ignore_index):
        """(N, 1, ...) float mask of the voxels that count."""
        key = ("m", ignore_index)
        if key not in self._cache:
            if ignore_index is None or self.labels is None:
                shape = (self.x.shape[0], 1) + tuple(self.x.shape[2:])
                m = torch.ones(shape, dtype=self.x.dtype, device=self.x.device)
            else:
                m = (self.labels != int(ignore_index)).unsqueeze(1).to(self.x.dtype)
            if self.weights is not None:   # docs/losses.md#masks: every voxel sum weighted once by w
                m = m * self.weights
            self._cache[key] = m
        return self._cache[key]


def _class_weights(P, counts, total, C):
    """weight=[..] as given, inverse or median frequencies from the (global)
    class counts (0 for a class absent from the batch), or None."""
    w = P["weight"]
    if w is None:
        return None
    if not isinstance(w, str):
        return counts.new_tensor(w)
    present = counts > 0
    if w == "inverse":
        ref = total / C
    else:  # median of the present classes' counts (mean of the middle two for an even number)
        v = counts[present].sort().values
        k = v.numel()
        ref = v[k // 2] if k % 2 else (v[k // 2 - 1] + v[k // 2]) / 2 if k else counts.new_tensor(0.0)
    return torch.where(present, ref / counts.clamp(min=1e-300), torch.zeros_like(counts))


def _weight_vector(P, s, C, like):
    """The class weights w_c of a per-class loss as a tensor like `like` (given, or inverse/median
    from the counts in s), or None without weights."""
    w = P["weight"]
    if isinstance(w, str):
        w = _class_weights(P, s["cnt"], s["tot"][0], C)
    if w is None:
        return None
    return like.new_tensor(w) if not torch.is_tensor(w) else w.to(like)


def _needs_counts(P):
    return isinstance(P["weight"], str)


class Term:
    def __init__(self, name, P):
        self.name, self.P = name, P
        self.index = None   # its position in the spec (SegLoss sets it): the key of its precomputed map

    def premap(self, inp):
        """The map passed in for this term (Inputs.premaps), or None."""
        return inp.premaps.get(self.index)


# Terms with a map that depends on the target only (target_map(inp)): what
# SegLoss.target_maps precomputes and SegLoss(...)(..., maps=) consumes.
MAPPED = ("boundary", "dpce", "boundary_aware", "hausdorff_dt", "log_hausdorff_dt", "blob", "cldice")


class CE(Term):
    """ce / wce (softmax form) and the binary form (sigmoid, bce)."""

    def binary(self, inp):
        # as the C library: bce is binary unless its activation resolves to softmax
        a = inp.act(self.P["activation"])
        return (self.name == "bce" and a != "softmax") or a == "sigmoid" or (a == "none" and inp.C == 1)

    def sums(self, inp):
        P, C = self.P, inp.C
        m = inp.mask(P["ignore_index"])
        g = inp.onehot() * m
        eps = float(P["label_smoothing"])
        a = inp.act(P["activation"])
        out = {"cnt": (g.sum((0,) + inp.axes)).detach(), "tot": m.sum().detach().reshape(1)}
        if self.binary(inp):
            gs = inp.onehot() * (1 - eps) + eps / 2     # unweighted inside; l * m weights each voxel once
            pw = float(P["pos_weight"])
            x = inp.x
            if a == "none":
                l = -(pw * gs * torch.log(x) + (1 - gs) * torch.log1p(-x))
            else:  # PyTorch's stable form with pos_weight
                lw = 1 + (pw - 1) * gs
                l = (1 - gs) * x + lw * (torch.log1p(torch.exp(-x.abs())) + torch.clamp(-x, min=0))
            out["lc"] = (l * m).sum((0,) + inp.axes)          # per channel
            return out
        logp = torch.log_softmax(inp.x, 1) if a == "softmax" else torch.log(inp.x)
        if inp.soft is not None:
            gs = inp.soft * (1 - eps) + eps / C
            out["lc"] = -(gs * logp * m).sum((0,) + inp.axes)
        else:
            out["lc"] = -(g * logp).sum((0,) + inp.axes)       # Σ over voxels of class c of -log p_c
            if eps:
                out["sc"] = -(logp * m).sum((0,) + inp.axes)   # Σ over valid voxels of -log p_c
        return out

    def finish(self, inp, s, red):
        P, C = self.P, inp.C
        w = _class_weights(P, s["cnt"], s["tot"][0], C)
        if self.binary(inp):
            l = s["lc"] if w is None else s["lc"] * w
            den = s["tot"][0] * C
            return torch.where(den > 0, l.sum() / den.clamp(min=1), l.sum() * 0), "global"
        if inp.soft is not None:
            l = s["lc"] if w is None else s["lc"] * w
            return l.sum() / s["tot"][0], "global"
        if w is None:
            w = torch.ones_like(s["cnt"])
        den = (w * s["cnt"]).sum()
        eps = float(P["label_smoothing"])
        num = (1 - eps) * (w * s["lc"]).sum()
        if eps:
            num = num + eps / C * (w * s["sc"]).sum()
        return torch.where(den > 0, num / den.clamp(min=1e-300), num * 0), "global"


class Region(Term):
    """Losses from soft counts per group: dice, iou, logcosh_dice, tversky,
    focal_tversky, wdice, adaptive_dice (and the sums of gdice)."""

    def sums(self, inp):
        P = self.P
        p0, g0 = inp.probs(P["activation"]), inp.onehot()
        if inp.unweighted(P["ignore_index"]):   # m is all ones: no mask tensor, no two full-size products
            p, g = p0, g0
        else:
            p, g = p0 * inp.mask(P["ignore_index"]), g0 * inp.mask(P["ignore_index"])
        axes = ((0,) if P["batch"] else ()) + inp.axes
        # the mask enters every sum once (Σ m·p·g, Σ m·p², ...): m is 0/1 without mask=, weights with it
        out = {"tp": (p * g0).sum(axes), "sp": p.sum(axes), "sg": g.sum(axes)}
        # Wang & Blaschko: tp = (Σp + Σg − Σ|p − g|)/2 (= Σp·g for a label map); squared=true is left
        # alone (Σp² + Σg² − 2Σp·g is Σ(p − g)² already), as the C library and MONAI
        m = inp.mask(P["ignore_index"]) if (P.get("soft_label") or self.name in ("mcc", "sensspec")
                                            or _needs_counts(P)) else None   # (cached per ignore_index)
        if P.get("soft_label") and not P.get("squared"):
            out["tp"] = (out["sp"] + out["sg"] - (m * (p0 - g0).abs()).sum(axes)) / 2
        if P.get("squared"):
            out["sp2"] = (p * p0).sum(axes)
            out["sg2"] = (g * g0).sum(axes)
        if self.name in ("mcc", "sensspec"):
            out["vm"] = (m * torch.ones_like(p)).sum(axes)       # valid voxels per group
        if self.name == "sensspec":
            err = (g0 - p0) ** 2 * m
            out["eg"] = (err * g0).sum(axes)
            out["en"] = (err * (1 - g0)).sum(axes)
        if _needs_counts(P):
            out["cnt"] = g.sum((0,) + inp.axes).detach()
            out["tot"] = m.sum().detach().reshape(1)
        out["n"] = inp.x.new_tensor([float(inp.x.shape[0])])
        return out

    def local_keys(self):
        # per-sample sums stay on their rank; pooled (batch=true) ones are reduced
        return () if self.P["batch"] else ("tp", "sp", "sg", "sp2", "sg2", "vm", "eg", "en")

    def group_loss(self, s):
        P, n = self.P, self.name
        tp, sp, sg = s["tp"], s["sp"], s["sg"]
        snr, sdr = float(P["smooth_nr"]), float(P["smooth_dr"])
        if n in ("dice", "logcosh_dice", "wdice", "adaptive_dice"):
            den = s["sp2"] + s["sg2"] if P.get("squared") else sp + sg
            D = (2 * tp + snr) / (den + sdr)
            return -torch.log(D) if P.get("log") else 1 - D
        if n == "focal_dice":
            D = (2 * tp + snr) / (sp + sg + sdr)
            return 1 - D ** (1.0 / float(P["beta"]))
        if n == "asym":
            b2 = float(P["beta"]) ** 2
            f = ((1 + b2) * tp + snr) / ((1 + b2) * tp + b2 * (sg - tp) + (sp - tp) + sdr)
            return 1 - f
        if n == "mcc":
            fp, fn = sp - tp, sg - tp
            tn = s["vm"] - sp - sg + tp
            Pr = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)
            ok = Pr > 0
            den = torch.sqrt(torch.where(ok, Pr, torch.ones_like(Pr)))
            return 1 - torch.where(ok, (tp * tn - fp * fn + snr) / (den + sdr), torch.full_like(Pr, snr / sdr))
        if n == "sensspec":
            r = float(P["r"])
            return r * s["eg"] / (sg + sdr) + (1 - r) * s["en"] / (s["vm"] - sg + sdr)
        if n == "iou":
            tot = s["sp2"] + s["sg2"] if P.get("squared") else sp + sg
            j = (tp + snr) / (tot - tp + sdr)
            return -torch.log(j) if P.get("log") else 1 - j
        a, b = float(P["alpha"]), float(P["beta"])
        ti = (tp + snr) / (tp + a * (sp - tp) + b * (sg - tp) + sdr)
        return 1 - ti if n == "tversky" else (1 - ti) ** float(P["gamma"])

    def class_values(self, inp, s):
        """reduction="none": the (N, C) values w_c·L_nc of the (sample, class) groups (batch=false sums),
        0 in the column that include_background=false drops (sl_loss_forward_none's class mode)."""
        C = inp.C
        l = self.group_loss(s).reshape(-1, C)
        w = _weight_vector(self.P, s, C, l)
        if w is not None:
            l = l * w
        if not self.P["include_background"] and C > 1:
            l = torch.cat([torch.zeros_like(l[:, :1]), l[:, 1:]], 1)
        return l

    def included(self, l, C):
        return l[..., 1:] if (not self.P["include_background"] and C > 1) else l

    def finish(self, inp, s, red):
        C = inp.C
        if self.P.get("pool_classes") and C > 1:
            # one group per sample (per batch): the included classes' sums added before the ratio
            first = 0 if self.P["include_background"] else 1
            s = dict(s)
            for k in ("tp", "sp", "sg", "sp2", "sg2"):
                if k in s:
                    s[k] = s[k][..., first:].sum(-1, keepdim=True)
            C = 1
        l = self.group_loss(s)                  # (C,) pooled or (N_local, C)
        kind = "global" if self.P["batch"] else "share"
        nglob = s["n"][0]
        if self.name in ("wdice", "adaptive_dice", "focal_dice"):
            if self.name == "adaptive_dice":
                w = self.adaptive_weights(l, nglob, red, C)
            elif isinstance(self.P["weight"], str):
                w = _class_weights(self.P, s["cnt"], s["tot"][0], C)
            else:
                w = self.P["weight"] if self.P["weight"] is not None else [1.0] * C
            w = l.new_tensor(w) if not torch.is_tensor(w) else w.to(l.dtype)
            li, wi = self.included(l, C), self.included(w, C)
            if not wi.sum() > 0:
                return l.sum() * 0, kind
            per = (li * wi).sum(-1) / wi.sum()
            return (per if self.P["batch"] else per.sum() / nglob), kind
        w = self.P["weight"]
        if isinstance(w, str):
            w = _class_weights(self.P, s["cnt"], s["tot"][0], C)
        if w is not None:
            l = l * (l.new_tensor(w) if not torch.is_tensor(w) else w.to(l))
        li = self.included(l, C)
        L = li.mean() if self.P["batch"] else li.sum() / (nglob * li.shape[-1])
        if self.name != "logcosh_dice":
            return L, kind
        # log cosh of the averaged dice loss (Jadon): of the global average, so the
        # shares are summed first (value global, gradient through this rank's share)
        if kind == "share":
            L = L + (red.sum_detached(L) - L.detach())
        return torch.log(torch.cosh(L)), "global"

    # adaptive_dice: the running average lives on the term (SegLoss keeps it in its state)
    history = None
    training = False

    def adaptive_weights(self, l, nglob, red, C):
        cur = l.detach() if self.P["batch"] else red.sum_detached(l.detach().sum(0)) / nglob
        h = self.history
        if self.training:
            mom = float(self.P["momentum"])
            h = cur.clone() if h is None else mom * h.to(cur) + (1 - mom) * cur
            self.history = h.detach()
        first = 1 if (not self.P["include_background"] and C > 1) else 0
        if h is None or torch.isnan(h[first:]).any() or not h[first:].sum() > 0:
            return torch.ones(C, dtype=l.dtype, device=l.device)
        return ((C - first) * h / h[first:].sum()).to(l)


class GDice(Region):
    def finish(self, inp, s, red):
        P, C = self.P, inp.C
        tp, sp, sg = (s[k] if P["batch"] else s[k] for k in ("tp", "sp", "sg"))
        if P["batch"]:
            tp, sp, sg = tp.unsqueeze(0), sp.unsqueeze(0), sg.unsqueeze(0)
        if not P["include_background"] and C > 1:
            tp, sp, sg = tp[:, 1:], sp[:, 1:], sg[:, 1:]
        with torch.no_grad():
            if P["w_type"] == "uniform":
                w = torch.ones_like(sg)
            else:
                w = 1.0 / (sg * sg) if P["w_type"] == "square" else 1.0 / sg
            finite = torch.isfinite(w)
            wmax = torch.where(finite, w, torch.zeros_like(w)).max(1, keepdim=True).values
            w = torch.where(finite, w, wmax.expand_as(w))
            tot = w.sum(1, keepdim=True)
            # normalize=false keeps the raw weights (MONAI's GeneralizedDiceLoss, smoothing included)
            wn = w / tot.clamp(min=1e-300) if P.get("normalize", True) else w
            w = torch.where(tot > 0, wn, torch.zeros_like(w))
        S = (2 * (w * tp).sum(1) + float(P["smooth_nr"])) / ((w * (sp + sg)).sum(1) + float(P["smooth_dr"]))
        l = 1 - S if self.name == "gdice" else 1 - S / (1 + float(P["k"]) * (1 - S))
        if P["batch"]:
            return l.mean(), "global"
        return l.sum() / s["n"][0], "share"


class Focal(Term):
    """focal: softmax form -Σ α_c (1-p_c)^γ g_c log p_c / (valid voxels); binary form
    per channel, (1-p_t)^γ times the binary CE, / (valid voxels · C)."""

    def sums(self, inp):
        P, C = self.P, inp.C
        m = inp.mask(P["ignore_index"])
        g = inp.onehot()
        a = inp.act(P["activation"])
        gamma = float(P["gamma"])
        shape = (1, C) + (1,) * len(inp.axes)
        alpha = P["alpha"]
        x = inp.x
        if a == "softmax" or (a == "none" and C > 1):
            logp = torch.log_softmax(x, 1) if a == "softmax" else torch.log(x)
            q = -torch.expm1(logp)
            l = -(q ** gamma * g * logp * m)
            if alpha is not None:
                av = list(alpha) if isinstance(alpha, list) else [1 - float(alpha)] + [float(alpha)] * (C - 1)
                l = l * x.new_tensor(av).view(shape)
            return {"s": l.sum().reshape(1), "cnt": m.sum().detach().reshape(1)}
        if a == "none":
            p = x
            ce = -(g * torch.log(p) + (1 - g) * torch.log1p(-p))
            q = 1 - p
        else:
            p = torch.sigmoid(x)
            ce = (1 - g) * x + torch.log1p(torch.exp(-x.abs())) + torch.clamp(-x, min=0)
            q = torch.sigmoid(-x)
        if P.get("normalized") or float(P.get("reduced_threshold") or 0) > 0:
            return self.smp_sums(ce, g, m, x, alpha, shape, C)
        l = ce * (p * (1 - g) + q * g) ** gamma
        if alpha is not None:
            av = x.new_tensor(list(alpha) if isinstance(alpha, list) else [float(alpha)] * C).view(shape)
            l = l * (av * g + (1 - av) * (1 - g))
        return {"s": (l * m).sum().reshape(1), "cnt": (m.sum() * C).detach().reshape(1)}

    def smp_sums(self, ce, g, m, x, alpha, shape, C):
        """smp's focal_loss_with_logits: pt = exp(-ce), f = (1 - pt)^γ, or ((1 - pt)/r)^γ where
        pt >= r and 1 below (reduced_threshold=r); Σ m·α_t·f·ce and Σ m·f (normalized divides by it)."""
        gamma, thr = float(self.P["gamma"]), float(self.P.get("reduced_threshold") or 0)
        pt, q = torch.exp(-ce), -torch.expm1(-ce)
        if thr > 0:
            f = torch.where(pt < thr, torch.ones_like(q), _pow0(q / thr, gamma))
        else:
            f = _pow0(q, gamma)
        e = f * ce
        if alpha is not None:
            av = x.new_tensor(list(alpha) if isinstance(alpha, list) else [float(alpha)] * C).view(shape)
            e = e * (av * g + (1 - av) * (1 - g))
        return {"s": (e * m).sum().reshape(1), "F": (f * m).sum().reshape(1), "cnt": (m.sum() * C).detach().reshape(1)}

    def finish(self, inp, s, red):
        v = s["s"][0]
        if self.P.get("normalized"):
            v = v / s["F"][0].clamp(min=1e-6)
        return torch.where(s["cnt"][0] > 0, v / s["cnt"][0].clamp(min=1e-300), v * 0), "global"


def _element_ce(inp, P):
    """Flat CE per element (voxel for softmax, (channel, voxel) for sigmoid) in
    memory order, the flat validity mask, and the probability of the true class
    (softmax, label map) / of the observed outcome (binary) / exp(-CE) (soft)."""
    C, a, x = inp.C, inp.act(P["activation"]), inp.x
    g = inp.onehot()
    m = inp.mask(P["ignore_index"])
    if a == "softmax" or (a == "none" and C > 1):
        logp = torch.log_softmax(x, 1) if a == "softmax" else torch.log(x)
        ce = -(g * logp).sum(1)
        pt = torch.exp(-ce) if inp.soft is not None else (logp.exp() * g).sum(1)
        if inp.weights is not None:   # mask=: ranked and averaged as m·ℓ (pt stays unweighted)
            ce = ce * m[:, 0]
        return ce.reshape(-1), m[:, 0].reshape(-1) > 0, pt.reshape(-1)
    if a == "none":
        p = x
        ce = -(g * torch.log(x) + (1 - g) * torch.log1p(-x))
    else:
        p = torch.sigmoid(x)
        ce = (1 - g) * x + torch.log1p(torch.exp(-x.abs())) + torch.clamp(-x, min=0)
    pt = torch.exp(-ce) if inp.soft is not None else p * g + (1 - p) * (1 - g)
    if inp.weights is not None:
        ce = ce * m
    return ce.reshape(-1), (m.expand_as(ce) > 0).reshape(-1), pt.reshape(-1)


def _top_mean(ce, valid, K):
    """Mean of the K largest valid values; ties in index order (stable sort), as the C code."""
    v = ce[valid]
    order = torch.sort(-v.detach(), stable=True).indices
    return v[order[:K]].mean()


class TopK(Term):
    """topk (mean CE of the k % largest, ranked over the batch) and ohem
    (CE of the elements whose true-class probability is below thresh, at
    least min_kept of them). A selection over the whole batch: not exact
    across ranks, so refused with a process group."""

    def sums(self, inp):
        return {}

    def finish(self, inp, s, red):
        # (SegLoss refuses topk/ohem with a process group: the selection is not exact across ranks)
        ce, valid, pt = _element_ce(inp, self.P)
        V = int(valid.sum())
        if V == 0:
            return inp.x.sum() * 0, "global"
        if self.name == "topk":
            return _top_mean(ce, valid, max(1, int(math.floor(V * float(self.P["k"]) / 100.0)))), "global"
        hard = (pt.detach() < float(self.P["thresh"])) & valid
        kmin = int(math.floor(V * float(self.P["min_kept"])))
        nh = int(hard.sum())
        if nh >= kmin:
            return (ce[hard].mean() if nh else inp.x.sum() * 0), "global"
        return _top_mean(ce, valid, kmin), "global"


class GWDice(Term):
    """generalized Wasserstein Dice (Fidon et al.) with class distance matrix M."""

    def sums(self, inp):
        P, C = self.P, inp.C
        p, g = inp.probs(P["activation"]), inp.onehot()
        mask = inp.mask(P["ignore_index"])[:, 0]
        if C == 1:
            p, g = torch.cat([1 - p, p], 1), torch.cat([1 - g, g], 1)
        K = p.shape[1]
        M = p.new_tensor(P["M"]).view(K, K) if P["M"] is not None else 1 - torch.eye(K, dtype=p.dtype,
                                                                                      device=p.device)
        mm = torch.einsum("nl...,lk->nk...", g, M)
        delta = (mm * p).sum(1)
        a = torch.einsum("nl...,l->n...", g, M[:, 0])
        axes = ((0,) if P["batch"] else ()) + tuple(range(1, delta.dim()))
        return {"tp": (a * (1 - delta) * mask).sum(axes), "ae": (delta * mask).sum(axes),
                "n": p.new_tensor([float(p.shape[0])])}

    def local_keys(self):
        return () if self.P["batch"] else ("tp", "ae")

    def finish(self, inp, s, red):
        P = self.P
        l = 1 - (2 * s["tp"] + float(P["smooth_nr"])) / (2 * s["tp"] + s["ae"] + float(P["smooth_dr"]))
        return (l, "global") if P["batch"] else (l.sum() / s["n"][0], "share")


class Combo(Term):
    """combo: α·(β-weighted CE) + (1 − α)·dice loss (Taghanaki et al.)."""

    def __init__(self, name, P):
        super().__init__(name, P)
        self.dice = Region("dice", dict(P, weight=None, squared=False, log=False))

    def sums(self, inp):
        P, C, x = self.P, inp.C, inp.x
        a = inp.act(P["activation"])
        g, m = inp.onehot(), inp.mask(P["ignore_index"])
        b = float(P["beta"])
        if a == "sigmoid" or (a == "none" and C == 1):
            lp, lq = (torch.log(x), torch.log1p(-x)) if a == "none" else (F.logsigmoid(x), F.logsigmoid(-x))
            ce = (-(b * g * lp + (1 - b) * (1 - g) * lq) * m).sum()
            cnt = m.sum() * C
        else:
            logp = torch.log_softmax(x, 1) if a == "softmax" else torch.log(x)
            w = x.new_tensor([1 - b] + [b] * (C - 1)).view((1, C) + (1,) * len(inp.axes))
            ce = (-(w * g * logp).sum(1, keepdim=True) * m).sum()
            cnt = m.sum()
        out = {"ce": ce.reshape(1), "cnt": cnt.detach().reshape(1)}
        out.update({"d_" + k: v for k, v in self.dice.sums(inp).items()})
        return out

    def local_keys(self):
        return tuple("d_" + k for k in self.dice.local_keys())

    def finish(self, inp, s, red):
        dl, kind = self.dice.finish(inp, {k[2:]: v for k, v in s.items() if k.startswith("d_")}, red)
        if kind == "share":   # make the dice part global (value) before mixing it with the global CE
            dl = dl + (red.sum_detached(dl) - dl.detach())
        al = float(self.P["alpha"])
        return al * s["ce"][0] / s["cnt"][0] + (1 - al) * dl, "global"


class DistanceCE(Term):
    """dpce and boundary_aware: CE weighted per voxel by a map of d, the distance
    from a voxel to the nearest voxel of another target label. d comes from the
    C library's exact EDT on the host (inp.label_distance), from the hard
    labels only: one map per sample from the label map (a soft target: its
    argmax), or, in the binary form (sigmoid), one per channel from g > 0.5."""

    def binary(self, inp):
        a = inp.act(self.P["activation"])
        return a == "sigmoid" or (a == "none" and inp.C == 1)

    def hard(self, inp):
        if self.binary(inp):
            if inp.soft is not None:
                return 1 + (inp.soft > 0.5).to(torch.int32)
            return 1 + inp.onehot().to(torch.int32)          # (N, C, ...): label == channel (label 1 for C = 1)
        if inp.soft is not None:
            return (1 + inp.soft.argmax(1)).to(torch.int32)  # first maximum, as the C code
        return (1 + inp.labels).to(torch.int32)

    def weights(self, inp):
        d = inp.label_distance(self.hard(inp)).to(inp.x)      # inf where a map has a single label
        flat = d.reshape(d.shape[0] * (d.shape[1] if self.binary(inp) else 1), -1)
        single = torch.isinf(flat).all(1, keepdim=True)
        if self.name == "dpce":
            dmax = torch.where(single, torch.ones_like(flat[:, :1]), flat.max(1, keepdim=True).values)
            lam = float(self.P["lambda"])
            w = torch.where(single, torch.ones_like(flat), 1 + lam * (1 - flat / dmax))
            w = w.float().to(inp.x)   # the C maps are float32
        else:
            band = float(self.P["width"]) * min(inp.spacing)
            w = torch.where(flat <= band, torch.full_like(flat, float(self.P["p_boundary"])),
                            torch.full_like(flat, float(self.P["p_inner"])))
        return w.reshape(d.shape)

    def target_map(self, inp):
        """The per-voxel CE weights: they depend on the target only."""
        return self.weights(inp)

    def sums(self, inp):
        a, x = inp.act(self.P["activation"]), inp.x
        g = inp.onehot()
        w = self.premap(inp)
        if w is None:
            w = self.weights(inp)
        # mask=: every voxel's term counts m times (docs/losses.md#masks): dpce Σ m·w·CE / (K·Σ m),
        # boundary_aware Σ m·w·CE / Σ m·w; the maps w stay those of the whole target
        m = inp.mask(None)
        if self.binary(inp):
            if a == "none":
                ce = -(g * torch.log(x) + (1 - g) * torch.log1p(-x))
            else:
                ce = (1 - g) * x + torch.log1p(torch.exp(-x.abs())) + torch.clamp(-x, min=0)
            K = inp.C
        else:
            logp = torch.log_softmax(x, 1) if a == "softmax" else torch.log(x)
            ce = -(g * logp).sum(1)
            m, K = m[:, 0], 1
        wm = w if inp.weights is None else w * m
        num = (wm * ce).sum()
        den = wm.sum() if self.name == "boundary_aware" else K * m.sum()
        return {"num": num.reshape(1), "den": den.detach().reshape(1)}

    def finish(self, inp, s, red):
        den = s["den"][0]
        return torch.where(den > 0, s["num"][0] / den.clamp(min=1e-300), s["num"][0] * 0), "global"


class UnifiedFocal(Term):
    """unified_focal (Yeung et al. 2022): λ·(modified focal) + (1 − λ)·(modified
    focal Tversky), symmetric or asymmetric. Classes are viewed as (C', K): the
    binary form (sigmoid) has K = 2 views (1 − p, p) of each of C' = C channels,
    the softmax form C' = 1 and K = C; view 0 is the background (rare-class
    emphasis by δ, and in the asymmetric form no focal suppression of the others)."""

    def views(self, inp):
        a, x, C = inp.act(self.P["activation"]), inp.x, inp.C
        g = inp.onehot()
        if a == "sigmoid" or (a == "none" and C == 1):
            if a == "none":
                q, lq = torch.stack([1 - x, x], 2), torch.stack([torch.log1p(-x), torch.log(x)], 2)
            else:
                q = torch.stack([torch.sigmoid(-x), torch.sigmoid(x)], 2)
                lq = torch.stack([F.logsigmoid(-x), F.logsigmoid(x)], 2)
            return q, lq, torch.stack([1 - g, g], 2)
        lq = torch.log_softmax(x, 1) if a == "softmax" else torch.log(x)
        return (lq.exp() if a == "softmax" else x).unsqueeze(1), lq.unsqueeze(1), g.unsqueeze(1)

    def sums(self, inp):
        P = self.P
        q, lq, h = self.views(inp)
        m = inp.mask(P["ignore_index"]).unsqueeze(1)
        K = q.shape[2]
        sym = P["variant"] == "symmetric"
        delta, gamma = float(P["delta"]), float(P["gamma"])
        shape = (1, 1, K) + (1,) * (q.dim() - 3)
        w = q.new_tensor([1 - delta] + [delta] * (K - 1)).view(shape)
        ef = q.new_tensor([gamma] + [gamma if sym else 0.0] * (K - 1)).view(shape)
        focal = ((w * (1 - q) ** ef * (-h * lq)).sum(2, keepdim=True) * m).sum()
        axes = ((0,) if P["batch"] else ()) + tuple(range(3, q.dim()))
        qm, hm = q * m, h * m
        tp = (qm * h).sum(axes)   # Σ m·q·h: the mask weighs each sum once
        return {"focal": focal.reshape(1), "fcnt": (m.sum() * q.shape[1]).detach().reshape(1),
                "tp": tp, "fn": (hm.sum(axes) - tp), "fp": (qm.sum(axes) - tp),
                "n": q.new_tensor([float(q.shape[0])])}

    def local_keys(self):
        return () if self.P["batch"] else ("tp", "fn", "fp")

    def finish(self, inp, s, red):
        P = self.P
        delta, gamma = float(P["delta"]), float(P["gamma"])
        sym = P["variant"] == "symmetric"
        tp = s["tp"]
        K = tp.shape[-1]
        mti = (tp + float(P["smooth_nr"])) / (tp + delta * s["fn"] + (1 - delta) * s["fp"] + float(P["smooth_dr"]))
        et = tp.new_tensor([1 - gamma if sym else 1.0] + [1 - gamma] * (K - 1))
        f = (1 - mti).clamp(min=0) ** et
        lam = float(P["lambda"])
        focal = s["focal"][0] / s["fcnt"][0]
        if P["batch"]:
            return lam * focal + (1 - lam) * f.mean(), "global"
        ftl = f.sum() / (s["n"][0] * f[0].numel())   # the mean over (sample, C', K) with the global sample count
        ftl = ftl + (red.sum_detached(ftl) - ftl.detach())   # global value; gradient through this rank's share
        return lam * focal + (1 - lam) * ftl, "global"


class Lovasz(Term):
    """Lovász-softmax (errors |g − p|) / Lovász hinge (sigmoid: errors 1 − x(2g − 1),
    relu'd) of Berman et al.: per class, the errors of the group (the whole batch,
    or one image with per_image=true) sorted in decreasing order (ties in index
    order), dotted with the Jaccard loss's increments; the mean over the classes
    (present ones only with classes=present, softmax) and then over the groups.
    A sort over the whole batch is refused with a process group; per_image=true
    is a mean over images and exact (divided by the global image count)."""

    def sums(self, inp):
        return {"n": inp.x.new_tensor([float(inp.x.shape[0])])} if self.P["per_image"] else {}

    def finish(self, inp, s, red):
        P, C, x = self.P, inp.C, inp.x
        hinge = inp.act(P["activation"]) == "sigmoid"
        p, g = inp.probs(P["activation"]), inp.onehot()
        # mask=: the weighted Jaccard loss's extension, a voxel of weight m counting m times in the
        # set counts (the order stays that of the unweighted errors); weight 0 (or ignore_index) removes it
        vw = inp.mask(P["ignore_index"])[:, 0]
        valid = vw > 0
        N = x.shape[0]
        groups = [[n] for n in range(N)] if P["per_image"] else [list(range(N))]
        total = x.sum() * 0
        for grp in groups:
            losses = []
            for c in range(C):
                m = valid[grp]
                gc = g[grp, c][m]
                wc = vw[grp][m]
                e = 1 - x[grp, c][m] * (2 * gc - 1) if hinge else (gc - p[grp, c][m]).abs()
                if not hinge and P["classes"] == "present" and not bool((wc * gc).sum() > 0):
                    continue
                if e.numel() == 0:
                    losses.append(x.sum() * 0)
                    continue
                order = torch.sort(e.detach(), descending=True, stable=True).indices
                f = torch.relu(e[order]) if hinge else e[order]
                gs, ws = gc[order], wc[order]
                wg = ws * gs
                gts = wg.sum()
                J = 1 - (gts - wg.cumsum(0)) / (gts + (ws * (1 - gs)).cumsum(0))
                losses.append(torch.dot(f, torch.cat([J[:1], J[1:] - J[:-1]])))
            if losses:
                total = total + sum(losses) / len(losses)
        if P["per_image"]:
            return total / s["n"][0], "share"
        return total / len(groups), "global"


class HausdorffDT(Term):
    """hausdorff_dt (Karimi & Salcudean; MONAI HausdorffDTLoss): mean over
    (sample, included class, voxel) of (p − g)²·(d_p^α + d_g^α), d = distance to
    the nearest voxel on the other side of the mask p > 0.5 (resp. g > 0.5), 0 for
    a mask without a boundary. Both maps come from the C library's EDT on the
    host: the target's from its labels, the prediction's from the thresholded
    mask (one int32 map copied to the host per forward); no gradient through them."""

    def dist(self, inp, mask):
        """d^alpha of a boolean mask (0 where the mask has no boundary), in x's dtype."""
        alpha = float(self.P["alpha"])
        d = inp.label_distance(1 + mask.to(torch.int32)).to(inp.x.dtype)
        d = torch.where(torch.isinf(d), torch.zeros_like(d), d)
        return d * d if alpha == 2 else d if alpha == 1 else d ** alpha

    def target_map(self, inp):
        """d_g^alpha of the included classes: the target's half of the weights."""
        first = 1 if (inp.C > 1 and not self.P["include_background"]) else 0
        with torch.no_grad():
            return self.dist(inp, inp.onehot()[:, first:] > 0.5)

    def sums(self, inp):
        P, C = self.P, inp.C
        first = 1 if (C > 1 and not P["include_background"]) else 0
        p = inp.probs(P["activation"])[:, first:]
        g = inp.onehot()[:, first:]
        with torch.no_grad():
            dg = self.premap(inp)
            w = self.dist(inp, p.detach() > 0.5).to(p) + (self.target_map(inp) if dg is None else dg).to(p)
        m = inp.mask(None)   # ones, or the voxel weights of mask= (the maps are those of the whole target)
        return {"s": ((p - g) ** 2 * w * m).sum().reshape(1), "cnt": (m.sum() * p.shape[1]).detach().reshape(1)}

    def finish(self, inp, s, red):
        return s["s"][0] / s["cnt"][0], "global"


class LogHausdorffDT(HausdorffDT):
    """log_hausdorff_dt (MONAI LogHausdorffDTLoss): log(1 + hausdorff_dt), of the global value."""

    def finish(self, inp, s, red):
        return torch.log1p(s["s"][0] / s["cnt"][0]), "global"


def _pow0(u, gamma):
    """u^gamma for u >= 0 with value and gradient 0 at u = 0 (the C library's limit
    for gamma > 0: (-ln D)^g at D = 1, (-ln p)^g at p = 1), instead of autograd's inf*0."""
    pos = u > 0
    return torch.where(pos, torch.where(pos, u, torch.ones_like(u)) ** gamma, torch.zeros_like(u))


class ExpLog(Region):
    """exp_log (Wong et al. 2018): w_dice * mean over included groups of (-ln D)^gamma_dice
    + w_ce * mean over valid voxels of sum_c w_c g_c (-ln p_c)^gamma_ce, w_c = (sum_k f_k / f_c)^(1/2)
    from the batch's (global) class counts f, 0 for an absent class."""

    def sums(self, inp):
        out = Region.sums(self, inp)
        P, C = self.P, inp.C
        m = inp.mask(P["ignore_index"])
        g = inp.onehot() * m
        a = inp.act(P["activation"])
        logp = torch.log_softmax(inp.x, 1) if a == "softmax" else torch.log(inp.x)
        u = (-logp).clamp(min=0)
        out["lc"] = (g * _pow0(u, float(P["gamma_ce"]))).sum((0,) + inp.axes)
        out["f"] = g.sum((0,) + inp.axes).detach()
        out["vt"] = m.sum().detach().reshape(1)
        return out

    def finish(self, inp, s, red):
        P, C = self.P, inp.C
        D = (2 * s["tp"] + float(P["smooth_nr"])) / (s["sp"] + s["sg"] + float(P["smooth_dr"]))
        u = torch.where(D < 1, -torch.log(torch.where(D < 1, D, torch.ones_like(D))), torch.zeros_like(D))
        li = self.included(_pow0(u, float(P["gamma_dice"])), C)
        if P["batch"]:
            dice = li.mean()
        else:   # this rank's share of the mean over (sample, class), made the global value
            dice = li.sum() / (s["n"][0] * li.shape[-1])
            dice = dice + (red.sum_detached(dice) - dice.detach())
        f = s["f"]
        w = torch.where(f > 0, (f.sum() / torch.where(f > 0, f, torch.ones_like(f))) ** 0.5, torch.zeros_like(f))
        vt = s["vt"][0]
        ce = torch.where(vt > 0, (w * s["lc"]).sum() / vt.clamp(min=1e-300), s["lc"].sum() * 0)
        return float(P["w_dice"]) * dice + float(P["w_ce"]) * ce, "global"


class Blob(Term):
    """blob (Kofler et al.): per (sample, included class), the connected
    components of the target mask (labelled by the C library on the host; only
    the uint8 mask crosses); for component k, D_k = (2 P_k + s_nr) /
    (b + P_k + |k| + s_dr), P_k = Σ p over the component, b = Σ p over the
    class's background (the other components masked out); L = mean_k (1 − D_k);
    the value is the mean of L over the groups that have a component."""

    def sums(self, inp):
        P, C = self.P, inp.C
        first = 1 if (C > 1 and not P["include_background"]) else 0
        p = inp.probs(P["activation"])[:, first:]
        lab = self.premap(inp)
        if lab is None:
            lab = self.target_map(inp)                            # (N, K, spatial...) int64, 0 = background
        N, K = p.shape[:2]
        pf, lf = p.reshape(N * K, -1), lab.reshape(N * K, -1)
        # mask=: P_k = Σ m·p over blob k, |k| = Σ m over it, b = Σ m·p over the background; the blobs
        # are those of the whole target, and a blob of weight 0 leaves the mean (docs/losses.md#masks)
        wf = None if inp.weights is None else inp.weights.expand(p.shape).reshape(N * K, -1)
        total, groups = p.sum() * 0, 0
        for j in range(N * K):
            nb = int(lf[j].max())
            if nb == 0:
                continue
            if wf is None:
                bins = torch.zeros(nb + 1, dtype=p.dtype, device=p.device).scatter_add(0, lf[j], pf[j])
                size = torch.bincount(lf[j], minlength=nb + 1)[1:].to(p.dtype)
            else:
                bins = torch.zeros(nb + 1, dtype=p.dtype, device=p.device).scatter_add(0, lf[j], wf[j] * pf[j])
                size = torch.zeros(nb + 1, dtype=p.dtype, device=p.device).scatter_add(0, lf[j], wf[j])[1:]
            D = (2 * bins[1:] + float(P["smooth_nr"])) / (bins[0] + bins[1:] + size + float(P["smooth_dr"]))
            if wf is not None:
                live = size > 0
                if not bool(live.any()):
                    continue
                D = D[live]
            total = total + (1 - D).mean()
            groups += 1
        return {"L": total.reshape(1), "G": p.new_tensor([float(groups)])}

    def target_map(self, inp):
        """The connected components of the included classes' target masks."""
        first = 1 if (inp.C > 1 and not self.P["include_background"]) else 0
        return inp.components(inp.onehot()[:, first:] > 0.5, self.P["connectivity"])

    def local_keys(self):
        return ("L",)

    def finish(self, inp, s, red):
        G = s["G"][0]
        return torch.where(G > 0, s["L"][0] / G.clamp(min=1), s["L"][0] * 0), "share"


def _pool(x, kernel, sign):
    """max (sign 1) or min (sign -1) over a window of `kernel` per spatial axis,
    inside the image (padding never wins), stride 1."""
    nd = x.dim() - 2
    fn = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[nd - 1]
    return sign * fn(sign * x, kernel, stride=1, padding=tuple(k // 2 for k in kernel))


def _erode(x):
    nd = x.dim() - 2
    out = None
    for a in range(nd):   # the cross: min over the axis-aligned 3-windows
        k = tuple(3 if b == a else 1 for b in range(nd))
        e = _pool(x, k, -1)
        out = e if out is None else torch.minimum(out, e)
    return out


def _open(x):
    return _pool(_erode(x), (3,) * (x.dim() - 2), 1)


def _soft_skeleton(x, iters):
    skel = torch.relu(x - _open(x))
    for _ in range(iters):
        x = _erode(x)
        delta = torch.relu(x - _open(x))
        skel = skel + torch.relu(delta - skel * delta)
    return skel


def _object_depth(gm, nsp, cap=100):
    """auto_iters of cldice: the largest city-block distance (face steps inside the grid) from a
    voxel of a boolean map (M, spatial...) to the nearest background voxel of its map, over the
    maps that have background; counted up to cap by growing the background one face step at a time."""
    gm = gm[(~gm).flatten(1).any(1)]
    if gm.numel() == 0:
        return 0
    reached = ~gm
    depth = 0
    while depth < cap and not bool(reached.all()):
        grown = reached.clone()
        for ax in range(1, 1 + nsp):
            n = reached.shape[ax]
            if n < 2:
                continue
            grown.narrow(ax, 1, n - 1).logical_or_(reached.narrow(ax, 0, n - 1))
            grown.narrow(ax, 0, n - 1).logical_or_(reached.narrow(ax, 1, n - 1))
        reached = grown
        depth += 1
    return depth if bool(reached.all()) else cap + 1


class ClDice(Region):
    """cldice: 1 − soft clDice with the paper's soft skeleton (min/max pools;
    the target's skeleton by the same formula, without gradient, on the device)."""

    def sums(self, inp):
        P = self.P
        v = inp.valid(P["ignore_index"])   # ignore_index: p = g = 0 there before the skeletons
        p = inp.probs(P["activation"]) * v
        g = inp.onehot() * v
        K = int(P["iters"])
        if P.get("auto_iters"):   # raise iters to the target's deepest object (at most 100), as the C library
            first = 1 if (not P["include_background"] and inp.C > 1) else 0
            with torch.no_grad():
                gm = (g[:, first:] > 0.5).reshape((-1,) + tuple(g.shape[2:]))
                depth = _object_depth(gm, len(inp.axes))
            if depth > K:
                K = min(depth, 100)
        sp = _soft_skeleton(p, K)
        sg = self.premap(inp)
        if sg is None:
            with torch.no_grad():
                sg = _soft_skeleton(g, K)
        sg = sg.to(p)
        axes = ((0,) if P["batch"] else ()) + inp.axes
        if inp.weights is not None:   # mask=: the four sums weighted; the skeletons are those of the whole maps
            w = inp.weights
            out = {"a": (w * sp * g).sum(axes), "b": (w * sp).sum(axes), "c": (w * sg * p).sum(axes),
                   "d": (w * sg).sum(axes)}
        else:
            out = {"a": (sp * g).sum(axes), "b": sp.sum(axes), "c": (sg * p).sum(axes), "d": sg.sum(axes)}
        out["n"] = inp.x.new_tensor([float(inp.x.shape[0])])
        if _needs_counts(P):
            m = inp.mask(P["ignore_index"])
            out["cnt"] = (inp.onehot() * m).sum((0,) + inp.axes).detach()
            out["tot"] = m.sum().detach().reshape(1)
        return out

    def target_map(self, inp):
        """The target's soft skeleton (after ignore_index), with the depth sums() uses."""
        P = self.P
        g = inp.onehot() * inp.valid(P["ignore_index"])
        K = int(P["iters"])
        if P.get("auto_iters"):
            first = 1 if (not P["include_background"] and inp.C > 1) else 0
            with torch.no_grad():
                depth = _object_depth((g[:, first:] > 0.5).reshape((-1,) + tuple(g.shape[2:])), len(inp.axes))
            K = min(depth, 100) if depth > K else K
        with torch.no_grad():
            return _soft_skeleton(g, K)

    def local_keys(self):
        return () if self.P["batch"] else ("a", "b", "c", "d")

    def group_loss(self, s):
        """1 − 2·Tprec·Tsens / (Tprec + Tsens) per group from the four sums (1 when both are 0)."""
        snr, sdr = float(self.P["smooth_nr"]), float(self.P["smooth_dr"])
        tprec = (s["a"] + snr) / (s["b"] + sdr)
        tsens = (s["c"] + snr) / (s["d"] + sdr)
        both0 = (tprec + tsens) == 0
        return torch.where(both0, torch.ones_like(tprec),
                           1 - 2 * tprec * tsens / torch.where(both0, torch.ones_like(tprec), tprec + tsens))

    def finish(self, inp, s, red):
        P, C = self.P, inp.C
        first = 1 if (not P["include_background"] and C > 1) else 0
        if P["pool_classes"]:
            s = dict(s, **{k: s[k][..., first:].sum(-1, keepdim=True) for k in ("a", "b", "c", "d")})
        l = self.group_loss(s)
        if not P["pool_classes"]:
            w = _weight_vector(P, s, C, l)
            if w is not None:
                l = l * w
            l = l[..., first:]
        kind = "global" if P["batch"] else "share"
        L = l.mean() if P["batch"] else l.sum() / (s["n"][0] * l.shape[-1])
        return L, kind


def _edge(x, padding):
    """E(x) = |Λ ⊛ x| / n, Λ = the 3^d box with neighbours 1 and centre −n,
    n = 3^d − 1; zero or replicate padding."""
    N, C = x.shape[:2]
    nd = x.dim() - 2
    n = 3 ** nd - 1
    conv = (F.conv1d, F.conv2d, F.conv3d)[nd - 1]
    y = x.reshape((N * C, 1) + tuple(x.shape[2:]))
    k = torch.ones((1, 1) + (3,) * nd, dtype=x.dtype, device=x.device)
    if padding == "replicate":
        box = conv(F.pad(y, (1, 1) * nd, mode="replicate"), k)
    else:
        box = conv(y, k, padding=1)
    return ((box - (n + 1) * y).abs() / n).reshape(x.shape)


class EdgeDice(Region):
    """edge_dice: α·(1 − D(p, g)) + (1 − α)·(1 − D(E(p), E(g))) per group, reduced as dice."""

    def sums(self, inp):
        P = self.P
        out = super().sums(inp)   # Σ m·p·g, Σ m·p, Σ m·g
        v = inp.valid(P["ignore_index"])   # ignore_index: p = g = 0 there before the edge maps
        m = inp.mask(P["ignore_index"])    # v times the weights of mask=, once per sum
        ep = _edge(inp.probs(P["activation"]) * v, P["padding"])
        with torch.no_grad():
            eg = _edge(inp.onehot() * v, P["padding"])
        axes = ((0,) if P["batch"] else ()) + inp.axes
        epm = ep * m
        out.update({"etp": (epm * eg).sum(axes), "esp": epm.sum(axes), "esg": (eg * m).sum(axes)})
        return out

    def local_keys(self):
        return super().local_keys() + (() if self.P["batch"] else ("etp", "esp", "esg"))

    def group_loss(self, s):
        P = self.P
        snr, sdr, a = float(P["smooth_nr"]), float(P["smooth_dr"]), float(P["alpha"])
        D = (2 * s["tp"] + snr) / (s["sp"] + s["sg"] + sdr)
        DE = (2 * s["etp"] + snr) / (s["esp"] + s["esg"] + sdr)
        return a * (1 - D) + (1 - a) * (1 - DE)


class SSIM(Region):
    """ssim: 1 − mean over positions of SSIM(p_c, g_c) (Wang et al.; MONAI's
    SSIMLoss conventions: separable Gaussian window, data range 1, valid or zero
    padding) per (sample, class), then the mean over included groups of w_c·L."""

    def sums(self, inp):
        P = self.P
        m = inp.mask(P["ignore_index"])
        v = inp.valid(P["ignore_index"])   # ignore_index: p = g = 0 there before the filters
        x = inp.probs(P["activation"]) * v
        y = inp.onehot() * v
        N, C = x.shape[:2]
        nd = x.dim() - 2
        k, sig = int(P["window"]), float(P["sigma"])
        j = torch.arange(k, dtype=x.dtype, device=x.device)
        w1 = torch.exp(-(((j - (k - 1) / 2) / sig) ** 2) / 2)
        w1 = w1 / w1.sum()
        K = w1
        for _ in range(nd - 1):
            K = K.unsqueeze(-1) * w1
        K = K.reshape((1, 1) + (k,) * nd)
        conv = (F.conv1d, F.conv2d, F.conv3d)[nd - 1]
        pad = (k - 1) // 2 if P["padding"] == "zero" else 0

        def f(t):
            return conv(t.reshape((N * C, 1) + tuple(t.shape[2:])), K, padding=pad)

        mx, my = f(x), f(y)
        sx, sy, sxy = f(x * x) - mx * mx, f(y * y) - my * my, f(x * y) - mx * my
        c1, c2 = 0.01 ** 2, 0.03 ** 2
        S = (2 * mx * my + c1) * (2 * sxy + c2) / ((mx * mx + my * my + c1) * (sx + sy + c2))
        if inp.weights is None:
            s = S.reshape(N, C, -1).mean(-1)
        else:
            # mask=: position o weighs m at its window's centre voxel (o + (k − 1)/2 per axis with
            # padding=valid, o itself with padding=zero); all weights 0: the group's value is 0 (SSIM 1)
            off = 0 if pad else (k - 1) // 2
            om = inp.weights[(slice(None), slice(None)) + tuple(slice(off, off + e) for e in S.shape[2:])]
            om = om.reshape(N, 1, -1)
            W = om.sum(-1)
            Ws = torch.where(W > 0, W, torch.ones_like(W))
            s = torch.where(W > 0, (S.reshape(N, C, -1) * om).sum(-1) / Ws, torch.ones_like(Ws))
        out = {"s": s, "n": x.new_tensor([float(N)])}
        if _needs_counts(P):
            out["cnt"] = inp.onehot().mul(m).sum((0,) + inp.axes).detach()
            out["tot"] = m.sum().detach().reshape(1)
        return out

    def local_keys(self):
        return ("s",)

    def group_loss(self, s):
        return 1 - s["s"]


class HausdorffER(Region):
    """hausdorff_er (Karimi & Salcudean; kornia's HausdorffERLoss): b_0 = (p − g)²,
    K times: e = max(B ⊛ b − 0.5, 0) with B the normalised cross (zero padding),
    b = e min-max normalised over the map; L = mean over valid voxels of
    Σ_k k^α b_k per (sample, class); then the mean over groups of w_c·L."""

    def sums(self, inp):
        P = self.P
        m = inp.mask(P["ignore_index"])
        v = inp.valid(P["ignore_index"])   # ignore_index: p = g = 0 there before the erosions
        p = inp.probs(P["activation"]) * v
        g = inp.onehot() * v
        N, C = p.shape[:2]
        nd = p.dim() - 2
        conv = (F.conv1d, F.conv2d, F.conv3d)[nd - 1]
        B = torch.zeros((3,) * nd, dtype=p.dtype, device=p.device)
        B[(1,) * nd] = 1
        for a in range(nd):
            for o in (0, 2):
                B[tuple(o if b == a else 1 for b in range(nd))] = 1
        B = (B / (2 * nd + 1)).reshape((1, 1) + (3,) * nd)
        b = ((p - g) ** 2).reshape((N * C, 1) + tuple(p.shape[2:]))
        acc = torch.zeros_like(b)
        alpha = float(P["alpha"])
        for k in range(1, int(P["erosions"]) + 1):
            r = conv(b, B, padding=1) - 0.5
            e = torch.where(r < 0, torch.zeros_like(r), r)
            ef = e.reshape(N * C, -1)
            hi, lo = ef.max(-1).values, ef.min(-1).values
            span = (hi - lo).view((N * C, 1) + (1,) * nd)
            lo = lo.view_as(span)
            same = span == 0
            b = torch.where(same, e, (e - lo) / torch.where(same, torch.ones_like(span), span))
            acc = acc + float(k) ** alpha * b
        # the mean over the valid voxels, each weighing its mask= weight; no weight at all: 0
        acc = acc.reshape(p.shape) * m
        vm = (m * torch.ones_like(p)).sum(inp.axes)
        vs = torch.where(vm > 0, vm, torch.ones_like(vm))
        out = {"s": torch.where(vm > 0, acc.sum(inp.axes) / vs, torch.zeros_like(vs)), "n": p.new_tensor([float(N)])}
        if _needs_counts(P):
            out["cnt"] = (g * m).sum((0,) + inp.axes).detach()
            out["tot"] = m.sum().detach().reshape(1)
        return out

    def local_keys(self):
        return ("s",)

    def group_loss(self, s):
        return s["s"]


class Boundary(Term):
    """mean over (sample, class in idc, voxel) of p_c·φ_c with the signed
    distance maps φ computed by the C library from the target (or passed in)."""

    def classes(self, C):
        idc = self.P["idc"]
        if idc is None:
            return list(range(1, C)) if C > 1 else [0]
        return [int(i) for i in idc]

    def sums(self, inp):
        maps = self.premap(inp)
        maps = inp.maps if maps is None else maps
        if maps is None:
            raise Unsupported("boundary needs the distance maps (computed from a CPU label map, or passed as dist=)")
        idc = self.classes(inp.C)
        p = inp.probs(self.P["activation"])[:, idc]
        phi = maps[:, idc].to(p)
        m = inp.mask(None)   # ones, or the voxel weights of mask=: Σ m·p·φ / (K·Σ m)
        return {"s": (p * phi * m).sum().reshape(1), "cnt": (m.sum() * len(idc)).detach().reshape(1)}

    def local_keys(self):
        return ()

    def finish(self, inp, s, red):
        return s["s"][0] / s["cnt"][0], "global"


CLASSES = {"ce": CE, "wce": CE, "bce": CE, "dice": Region, "iou": Region, "logcosh_dice": Region,
           "tversky": Region, "focal_tversky": Region, "wdice": Region, "adaptive_dice": Region,
           "gdice": GDice, "pgdice": GDice, "boundary": Boundary, "asym": Region, "focal_dice": Region,
           "sensspec": Region, "mcc": Region, "focal": Focal, "topk": TopK, "ohem": TopK, "gwdice": GWDice,
           "combo": Combo, "dpce": DistanceCE, "boundary_aware": DistanceCE,
           "unified_focal": UnifiedFocal, "lovasz": Lovasz,
           "hausdorff_dt": HausdorffDT, "log_hausdorff_dt": LogHausdorffDT, "exp_log": ExpLog, "blob": Blob,
           "cldice": ClDice, "edge_dice": EdgeDice, "ssim": SSIM,
           "hausdorff_er": HausdorffER}


# Terms whose native form takes per-voxel weights (mask=); checked against the C path
# in tests/python/test_torch_mask.py. Other terms refuse a mask on the native path.
MASKED = ("ce", "wce", "bce", "dice", "iou", "logcosh_dice", "tversky", "focal_tversky", "exp_log", "gdice", "pgdice",
          "focal", "sensspec", "mcc", "boundary", "hausdorff_dt", "log_hausdorff_dt",
          "dpce", "lovasz", "hausdorff_er", "boundary_aware", "edge_dice", "cldice", "blob", "ssim",
          "asym", "focal_dice", "wdice", "adaptive_dice", "combo", "unified_focal", "gwdice", "topk", "ohem")


def make_term(name, params):
    """A native term from a parsed spec term, or Unsupported naming what is not covered."""
    if name not in CLASSES:
        raise Unsupported("loss %r is not covered by the native (torch) backend; covered: %s"
                          % (name, ", ".join(sorted(CLASSES))))
    for k in params:
        if k not in KEYS[name]:
            raise Unsupported("key %s=%r of loss %r is not covered by the native (torch) backend"
                              % (k, params[k], name))
    P = dict(DEFAULTS)
    P.update(LOSS_DEFAULTS.get(name, {}))
    P.update(params)
    return CLASSES[name](name, P)


class Reducer:
    """Sums over a process group (identity without one)."""

    def __init__(self, group):
        self.group = group
        if group is None:
            self.world = 1
        else:
            import torch.distributed as dist
            self.world = dist.get_world_size(group)

    def sum_detached(self, t):
        if self.group is None:
            return t.detach()
        import torch.distributed as dist
        t = t.detach().clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM, group=self.group)
        return t

    def pooled(self, dicts, local_keys):
        """All-reduces every non-local sum of every term in ONE flat vector;
        returns dicts of surrogates S_local + (S_global - S_local).detach()."""
        if self.group is None:
            return dicts
        flat, where = [], []
        for i, (d, lk) in enumerate(zip(dicts, local_keys)):
            for k, v in d.items():
                if k not in lk:
                    flat.append(v.detach().reshape(-1).to(torch.float64))
                    where.append((i, k))
        if not flat:
            return dicts
        g = self.sum_detached(torch.cat(flat))
        out = [dict(d) for d in dicts]
        o = 0
        for i, k in where:
            v = dicts[i][k]
            gv = g[o:o + v.numel()].reshape(v.shape).to(v.dtype)
            o += v.numel()
            out[i][k] = v + (gv - v.detach()) if v.requires_grad else gv
        return out


# Terms with per-(sample, class) values under reduction="none" (without pool_classes): the
# losses whose C class has SL_PER_CLASS (src/loss); a spec of only these gives an (N, C) matrix.
PER_CLASS = ("dice", "iou", "tversky", "focal_tversky", "asym", "mcc", "sensspec", "ssim", "hausdorff_er",
             "edge_dice", "cldice")


def none_columns(terms, C, spec):
    """K of the (N, K) matrix of reduction="none" (sl_loss_none_columns): C when every term is a
    per-class loss, else 1; a stateful term or batch=true is refused as the C library does."""
    from .. import errors
    for t in terms:
        if t.name == "adaptive_dice":
            raise errors.InvalidArgumentError("%s: %s: a stateful loss has no per-sample values (reduction=none)"
                                              % (spec, t.name))
        if t.P.get("batch"):
            raise errors.InvalidArgumentError("%s: %s: batch=true pools the samples, so it has no per-sample values "
                                              "(reduction=none)" % (spec, t.name))
    return C if per_class(terms) else 1


def per_class(terms):
    """True when every term reports per-class values under reduction="none" (class mode)."""
    return all(t.name in PER_CLASS and not t.P.get("pool_classes") for t in terms)


def evaluate_none(terms, weights, inp, spec):
    """reduction="none": ((N, K) values, [unweighted term values of the last sample]), each sample
    evaluated as a batch of one (its own class weights, selections, sorts and auto_iters), as
    sl_loss_forward_none does; K = C: M_nc = Σ_t weight_t·w_c·L_t,nc, else M_n = the sample's loss.
    autograd gives the gradient of any Σ u·M."""
    N, C = inp.x.shape[0], inp.C
    none_columns(terms, C, spec)
    by_class = per_class(terms)   # (N, C); else (N, 1) (C = 1 gives one column either way)
    if by_class and not any(isinstance(t.P.get("weight"), str) or t.P.get("auto_iters") for t in terms):
        # class mode without statistics of the sample's own (inverse/median weights, auto_iters): the
        # batch=false sums of the whole batch are already per (sample, class); one pass, no loop
        M, vals = 0, []
        for t, w in zip(terms, weights):
            Mt = t.class_values(inp, t.sums(inp))
            M = M + w * Mt
            first = 1 if (not t.P["include_background"] and C > 1) else 0
            vals.append(Mt[-1, first:].mean().detach())   # the last sample's term value, as the C path
        return M, vals
    rows, vals = [], []
    for n in range(N):
        sub = inp.sample(n)
        if not by_class:
            v, vals = evaluate(terms, weights, sub, None)
            rows.append(v.reshape(1))
            continue
        row, vals = 0, []
        for t, w in zip(terms, weights):
            s = t.sums(sub)
            row = row + w * t.class_values(sub, s)[0]
            vals.append(t.finish(sub, s, Reducer(None))[0].detach())
        rows.append(row)
    return torch.stack(rows), vals


def evaluate(terms, weights, inp, group):
    """(loss tensor, [unweighted term values]) on the logits' device."""
    red = Reducer(group)
    sums = [t.sums(inp) for t in terms]
    lks = [t.local_keys() if hasattr(t, "local_keys") else () for t in terms]
    sums = red.pooled(sums, lks)
    glob, share, vals = 0, 0, []
    for t, w, s in zip(terms, weights, sums):
        v, kind = t.finish(inp, s, red)
        vals.append((v, kind))
        if kind == "global":
            glob = glob + w * v
        else:
            share = share + w * v
    total = glob + share
    if red.world == 1:
        return total, [v.detach() for v, _ in vals]
    # value: the global loss; gradient: world x the rank's part (DDP divides by world)
    shares = [v.detach() for v, k in vals if k == "share"]
    if shares:
        summed = red.sum_detached(torch.stack(shares + [torch.as_tensor(share).detach().to(shares[0])]))
        shares_g = iter(summed[:-1].tolist())
        share_value = summed[-1]
    else:
        shares_g, share_value = iter(()), 0
    value = torch.as_tensor(glob).detach() + share_value
    scaled = red.world * total
    out = scaled - scaled.detach() + value
    term_vals = [v.detach() if k == "global" else next(shares_g) for v, k in vals]
    return out, term_vals


_TOKEN = re.compile(r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)|(?P<word>[A-Za-z_][A-Za-z0-9_]*)|(?P<sym>[-+*()=,\[\]]))")


def parse_spec(spec):
    """[(weight, name, {key: value})] by the grammar of include/segloss/loss.h.
    Only called after the C library accepted the spec, so it need not explain
    syntax errors; it raises ValueError if it disagrees with the C parser."""
    toks, pos = [], 0
    spec = spec.strip()
    while pos < len(spec):
        m = _TOKEN.match(spec, pos)
        if not m or m.end() == pos:
            raise ValueError("spec %r: cannot read at %r" % (spec, spec[pos:]))
        pos = m.end()
        kind = m.lastgroup
        toks.append((kind, m.group(kind)))
    i = [0]

    def peek(v=None):
        if i[0] >= len(toks):
            return None
        t = toks[i[0]]
        return t if v is None or t[1] == v else None

    def take(v=None):
        t = peek(v)
        if t is None:
            raise ValueError("spec %r: unexpected end or token" % spec)
        i[0] += 1
        return t

    def number():
        sign = -1.0 if peek("-") and take("-") else 1.0
        return sign * float(take()[1])

    def value():
        if peek("-") or peek()[0] == "num":
            return number()
        t = take()
        if t[1] == "[":
            out = [number()]
            while peek(","):
                take(",")
                out.append(number())
            take("]")
            return out
        if t[1] in ("true", "false"):
            return t[1] == "true"
        return t[1]

    terms = []
    while True:
        w = 1.0
        if peek() and peek()[0] == "num":
            w = float(take()[1])
            take("*")
        name = take()[1]
        params = {}
        if peek("("):
            take("(")
            while True:
                k = take()[1]
                take("=")
                params[k] = value()
                if peek(","):
                    take(",")
                    continue
                take(")")
                break
        terms.append((w, name, params))
        if not peek("+"):
            break
        take("+")
    if i[0] != len(toks):
        raise ValueError("spec %r: trailing tokens" % spec)
    return terms


def validate(terms, C, spatial, spec, x, soft):
    """The input-dependent checks the C library makes in sl_loss_forward, with
    the same exception classes (the C path raises them from the C code)."""
    from .. import errors
    if not bool(torch.isfinite(x).all()):
        raise errors.NonFiniteError("%s: the scores contain NaN or Inf" % spec)
    if soft is not None and not bool(((soft >= 0) & (soft <= 1)).all()):
        raise errors.RangeError("%s: a soft target value is outside [0, 1]" % spec)
    for t in terms:
        P, n = t.P, t.name
        a = P.get("activation", "auto")
        if P.get("ignore_index") is not None and soft is not None:
            raise errors.InvalidArgumentError("%s: %s: ignore_index needs a label-map target, not a soft one"
                                              % (spec, n))
        if a == "none" and not bool(((x >= 0) & (x <= 1)).all()):
            raise errors.RangeError("%s: %s: activation=none takes probabilities, but a score is outside [0, 1]"
                                    % (spec, n))
        if n == "focal" and (P.get("normalized") or float(P.get("reduced_threshold") or 0) > 0) and \
                (a == "softmax" or (a == "auto" and C > 1) or (a == "none" and C > 1)):
            raise errors.InvalidArgumentError("%s: focal: normalized and reduced_threshold are smp's sigmoid forms "
                                              "(activation=sigmoid, or one channel)" % spec)
        if n == "exp_log" and (C < 2 or a == "sigmoid"):
            raise errors.InvalidArgumentError("%s: exp_log: needs a distribution per voxel (softmax with C > 1, or "
                                              "activation=none with C > 1)" % spec)
        if a == "softmax" and C == 1:
            raise errors.ShapeError("%s: %s: softmax needs C > 1 channels (one channel uses activation=sigmoid)" % (spec, n))
        w = P.get("weight")
        if isinstance(w, list) and len(w) != C:
            raise errors.ShapeError("%s: %s: weight has %d values but the scores have C = %d channels" % (spec, n, len(w), C))
        al = P.get("alpha")
        if n == "focal" and isinstance(al, list) and len(al) != C:
            raise errors.ShapeError("%s: %s: alpha has %d values but the scores have C = %d channels" % (spec, n, len(al), C))
        if n == "gwdice" and P["M"] is not None:
            K = 2 if C == 1 else C
            if len(P["M"]) != K * K:
                raise errors.ShapeError("%s: %s: M has %d values, needs %d x %d = %d" % (spec, n, len(P["M"]), K, K, K * K))
        if n == "boundary" and P["idc"] is not None:
            bad = [i for i in P["idc"] if not 0 <= int(i) < C or int(i) != i]
            if bad:
                raise errors.ShapeError("%s: %s: idc %g is not a channel index in [0, %d)" % (spec, n, bad[0], C))
        if n == "ssim" and P["padding"] == "valid" and min(spatial) < int(P["window"]):
            raise errors.ShapeError("%s: %s: window %d does not fit a spatial extent of %d (padding=valid)"
                                    % (spec, n, int(P["window"]), min(spatial)))
