"""MONAI's other_act in the segloss.torch.monai drop-ins (DiceLoss, TverskyLoss,
GeneralizedDiceLoss, HausdorffDTLoss): MONAI applies the callable to the whole
input before the loss (input = self.other_act(input), after its sigmoid/softmax
branches, which other_act excludes); the drop-ins do the same in PyTorch and
hand segloss the probabilities. Checked, value and gradient, against the
transcriptions of MONAI's forward in test_torch_monai.py (m_dice, m_tversky,
m_gdl) and tests/ref/test_loss_hausdorff_dt.py (ref_hd) applied to
other_act(input); plus MONAI's argument checks (not callable: TypeError;
with sigmoid or softmax: ValueError) and the compound losses (DiceCELoss,
DiceFocalLoss), where MONAI gives it to the Dice term only and the other
term takes the raw logits.
# sanitized: skip (loads libsegloss.so through ctypes)
"""
import numpy as np
import torch

import pyref  # noqa: F401  (paths)
import slref
import test_loss_hausdorff_dt as THD
import test_torch_monai as TM

from segloss.torch import monai as M

torch.set_default_dtype(torch.float64)


def main():
    chk = slref.Check("segloss.torch.monai other_act")
    rng = np.random.default_rng(91)
    acts = {"sigmoid(1.7x)": lambda x: torch.sigmoid(1.7 * x),
            "softmax(x/2)": lambda x: torch.softmax(0.5 * x, 1),
            "normalised square": lambda x: (x * x) / (x * x).sum(1, keepdim=True)}
    for C, sp in ((3, (6, 7)), (2, (3, 5, 4)), (1, (9, 8))):
        x, lab, oh = TM.inputs(rng, 2, C, sp, empty=(1 if C == 3 else None))
        for an, f in acts.items():
            if an != "sigmoid(1.7x)" and C == 1:     # a normalisation over one channel is constant
                continue
            for ib in (True, False):
                TM.compare(chk, "DiceLoss other_act=%s C=%d bg=%s" % (an, C, ib),
                           M.DiceLoss(other_act=f, include_background=ib, to_onehot_y=C > 1),
                           lambda a, b: TM.m_dice(f(a), b, include_background=ib, to_onehot_y=C > 1),
                           x, lab if C > 1 else oh)
            TM.compare(chk, "DiceLoss other_act=%s jaccard squared batch C=%d" % (an, C),
                       M.DiceLoss(other_act=f, jaccard=True, squared_pred=True, batch=True),
                       lambda a, b: TM.m_dice(f(a), b, jaccard=True, squared_pred=True, batch=True), x, oh)
            TM.compare(chk, "TverskyLoss other_act=%s C=%d" % (an, C),
                       M.TverskyLoss(other_act=f, alpha=0.3, beta=0.7, to_onehot_y=C > 1, reduction="sum"),
                       lambda a, b: TM.m_tversky(f(a), b, alpha=0.3, beta=0.7, to_onehot_y=C > 1, reduction="sum"),
                       x, lab if C > 1 else oh)
            TM.compare(chk, "GeneralizedDiceLoss other_act=%s C=%d" % (an, C),
                       M.GeneralizedDiceLoss(other_act=f, w_type="simple"),
                       lambda a, b: TM.m_gdl(f(a), b, w_type="simple"), x, oh)
    # HausdorffDTLoss: other_act=torch.sigmoid on scores away from the 0.5 threshold
    for C, sp in ((3, (10, 9)), (1, (6, 7, 5))):
        x, lab, oh = TM.inputs(rng, 2, C, sp)
        x = THD.away_from_half(rng, x, C, "sigmoid")
        TM.compare(chk, "HausdorffDTLoss other_act=sigmoid C=%d" % C,
                   M.HausdorffDTLoss(other_act=torch.sigmoid, include_background=True),
                   lambda a, b: THD.ref_hd(torch.sigmoid(a), b.argmax(1) if C > 1 else b, C, activation="none",
                                           include_background=True), x, oh)
    # MONAI's checks, and what stays refused
    TM.raises(chk, "DiceLoss other_act not callable", lambda: M.DiceLoss(other_act=3), TypeError, ["callable"])
    TM.raises(chk, "DiceLoss other_act + sigmoid", lambda: M.DiceLoss(other_act=torch.sigmoid, sigmoid=True),
              ValueError, ["Incompatible"])
    # DiceCELoss / DiceFocalLoss: MONAI gives other_act to their DiceLoss only; the CE and focal
    # terms take the raw logits
    f = acts["sigmoid(1.7x)"]
    for C, sp in ((3, (6, 7)), (1, (5, 4, 3))):
        x, lab, oh = TM.inputs(rng, 2, C, sp)
        y = lab if C > 1 else oh
        TM.compare(chk, "DiceCELoss other_act C=%d" % C,
                   M.DiceCELoss(other_act=f, to_onehot_y=C > 1, lambda_ce=0.7),
                   lambda a, b: TM.m_dice(f(a), b, to_onehot_y=C > 1) + 0.7 * TM.m_ce(a, b), x, y)

        def dicefocal_ref(a, b, C=C):
            t = torch.nn.functional.one_hot(b[:, 0].long(), C).movedim(-1, 1).to(a.dtype) if C > 1 else b
            return TM.m_dice(f(a), b, to_onehot_y=C > 1) + 0.5 * TM.m_focal(a, t, gamma=1.5)
        TM.compare(chk, "DiceFocalLoss other_act C=%d" % C,
                   M.DiceFocalLoss(other_act=f, to_onehot_y=C > 1, lambda_focal=0.5, gamma=1.5), dicefocal_ref, x, y)
    x, lab, oh = TM.inputs(rng, 1, 2, (5, 5))
    TM.raises(chk, "DiceLoss other_act=tanh (values below 0)",
              lambda: M.DiceLoss(other_act=torch.tanh)(torch.tensor(x), torch.tensor(oh)), ValueError, [])
    chk.report()


if __name__ == "__main__":
    main()
