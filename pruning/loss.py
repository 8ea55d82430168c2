"""The MultiBox loss that EXTD and EResFD are trained with (S3FD matching, hard-negative mining).

Matching follows the authors' training code: a prior is a face when its best IoU with a face is
at least 0.35; every face also claims the prior it overlaps most; then S3FD's scale compensation
adds the best-overlapping priors between 0.1 and 0.35, as many as the average number of faces
matched at 0.35 and at 0.5. Localisation is smooth-L1 on the face priors, classification is
softmax cross-entropy on the face priors and the hardest background priors (3 per face prior),
both divided by the number of face priors in the batch.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from facedet.box_coding import VARIANCES, encode
from facedet.iou import iou_matrix

THRESHOLDS = (0.1, 0.35, 0.5)  # (scale-compensation floor, face IoU, strict face IoU)


def prior_corners(priors):
    """(cx, cy, w, h) priors as (x1, y1, x2, y2)."""
    return torch.cat((priors[:, :2] - priors[:, 2:] / 2, priors[:, :2] + priors[:, 2:] / 2), dim=1)


def match(truths, priors, thresholds=THRESHOLDS):
    """Assign each prior a face or the background for one image.

    ``truths``: ``[N, 4]`` normalised x1,y1,x2,y2 faces; ``priors``: ``[P, 4]`` cx,cy,w,h.
    Returns ``(is_face [P] bool, matched [P, 4])``: the face box each prior regresses to
    (meaningful where ``is_face``).
    """
    low, face, strict = thresholds
    num_priors = priors.shape[0]
    if truths.shape[0] == 0:
        return torch.zeros(num_priors, dtype=torch.bool, device=priors.device), priors.new_zeros(num_priors, 4)
    overlaps = iou_matrix(truths, prior_corners(priors))  # [N, P]
    best_prior_overlap, best_prior = overlaps.max(dim=1)  # per face
    best_truth_overlap, best_truth = overlaps.max(dim=0)  # per prior
    # Every face keeps the prior it overlaps most, whatever the IoU. When two faces share that
    # prior the later face wins, as in the authors' loop.
    best_truth_overlap[best_prior] = 2.0
    face_index = torch.arange(truths.shape[0], device=truths.device)
    best_truth.scatter_reduce_(0, best_prior, face_index, reduce="amax", include_self=False)
    is_face = best_truth_overlap >= face

    # Scale compensation: faces whose best prior is poor (tiny or odd-sized faces) get extra
    # positives from the priors between the floor and the face threshold, best first.
    extra = (int((best_prior_overlap >= face).sum()) + int((best_prior_overlap >= strict).sum())) // 2
    if extra > 0:
        candidate = (best_truth_overlap > low) & (best_truth_overlap < face)
        scores = torch.where(candidate, best_truth_overlap, torch.zeros_like(best_truth_overlap))
        order = scores.argsort(descending=True, stable=True)
        chosen = order[: min(extra, int(candidate.sum()))]
        is_face[chosen] = True
    return is_face, truths[best_truth]


class MultiBoxLoss(nn.Module):
    """``loss_fn(loc, conf, priors, targets) -> (loss_loc, loss_conf)``.

    ``loc [B, P, 4]`` and ``conf [B, P, 2]`` (background, face logits) are the network's outputs,
    ``priors [P, 4]`` the cx,cy,w,h priors of the input size (``facedet.priors.make_priors``),
    ``targets`` a list of ``B`` tensors ``[N_i, 4]`` of normalised x1,y1,x2,y2 faces.

    An image without faces is all background; it contributes as many hard negatives as an
    average image of the batch (at least ``neg_pos_ratio``), so face-free crops still teach
    the classifier without swamping it. The losses are summed over the batch and divided by
    its number of face priors (by the batch size when there are none).
    """

    def __init__(self, variances=VARIANCES, thresholds=THRESHOLDS, neg_pos_ratio=3):
        super().__init__()
        if len(thresholds) != 3 or not 0 <= thresholds[0] < thresholds[1] <= thresholds[2]:
            raise ValueError(f"thresholds must be (low, face, strict) increasing, got {thresholds}")
        self.variances = tuple(variances)
        self.thresholds = tuple(thresholds)
        self.neg_pos_ratio = neg_pos_ratio

    def targets_for(self, priors, targets):
        """``(is_face [B, P] bool, loc_targets [B, P, 4])`` for a batch of face lists."""
        flags, locs = [], []
        for truths in targets:
            truths = truths.to(device=priors.device, dtype=priors.dtype).reshape(-1, 4)
            # A box without area cannot be encoded (log of 0); it is no face to learn from.
            truths = truths[(truths[:, 2] > truths[:, 0]) & (truths[:, 3] > truths[:, 1])]
            is_face, matched = match(truths, priors, self.thresholds)
            loc = torch.zeros_like(matched)
            if is_face.any():
                loc[is_face] = encode(matched[is_face], priors[is_face], self.variances)
            flags.append(is_face)
            locs.append(loc)
        return torch.stack(flags), torch.stack(locs)

    def forward(self, loc, conf, priors, targets):
        batch, num_priors = loc.shape[:2]
        if conf.shape[:2] != (batch, num_priors) or priors.shape[0] != num_priors or len(targets) != batch:
            raise ValueError(
                f"loc {tuple(loc.shape)}, conf {tuple(conf.shape)}, priors {tuple(priors.shape)} "
                f"and {len(targets)} targets do not agree"
            )
        # Losses in float32 even under autocast: the log-sum-exp over ~34k priors needs it.
        loc, conf = loc.float(), conf.float()
        priors = priors.to(device=loc.device, dtype=torch.float32)
        with torch.no_grad():
            is_face, loc_targets = self.targets_for(priors, targets)
        labels = is_face.long()
        num_faces = is_face.sum(dim=1)

        loss_loc = F.smooth_l1_loss(loc[is_face], loc_targets[is_face], reduction="sum")

        per_prior = F.cross_entropy(conf.reshape(-1, 2), labels.reshape(-1), reduction="none").reshape(batch, num_priors)
        hard = self._hard_negatives(per_prior.detach(), is_face, num_faces)
        chosen = is_face | hard
        loss_conf = per_prior[chosen].sum()

        total = num_faces.sum()
        denominator = total.float() if total > 0 else torch.tensor(float(batch), device=loc.device)
        return loss_loc / denominator, loss_conf / denominator

    def _hard_negatives(self, per_prior, is_face, num_faces):
        """The background priors with the highest loss: ``neg_pos_ratio`` per face prior."""
        wanted = self.neg_pos_ratio * num_faces
        with_faces = num_faces > 0
        if not with_faces.all():
            typical = (wanted[with_faces].float().mean().round().long() if with_faces.any() else wanted.new_tensor(0))
            wanted = torch.where(with_faces, wanted, typical.clamp(min=self.neg_pos_ratio))
        wanted = wanted.clamp(max=per_prior.shape[1] - 1)
        background_loss = per_prior.masked_fill(is_face, 0.0)
        rank = background_loss.argsort(dim=1, descending=True).argsort(dim=1)
        return (rank < wanted[:, None]) & ~is_face
