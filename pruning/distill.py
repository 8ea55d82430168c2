"""Knowledge distillation from the unpruned detector (the teacher) into the pruned one (the student).

The student learns the teacher's outputs on the very crops it trains on, so no labels are needed:

- ``conf``: the teacher's face probability on every prior, background included, as a binary
  KL divergence at temperature ``T`` (times T², Hinton et al.), summed over priors (those the
  teacher calls faces ``face_weight`` times: they are a few dozen among thousands; with ``focus``
  each prior weighted by how far the student's face probability is from the teacher's, to that power);
- ``loc``: smooth-L1 to the teacher's box regression on the priors where the teacher is
  confident (face probability >= ``loc_threshold``);
- ``features`` (optional): mean squared error between the maps both models feed their detection
  heads (same architecture, so channel by channel);
- ``boxes`` (optional, in ``pruning.train``): the teacher's detections on the crop (score >=
  ``box_score``, after NMS) taken as labels for the MultiBox loss, whose hard-negative mining
  goes after the student's most confident boxes where the teacher sees no face;
- ``anchor`` (optional, in ``pruning.train``): the squared distance of the student's weights to
  the teacher's (``weight_distance``, L2-SP).

The sums are divided by the number of confident teacher priors in the batch (at least the batch
size), as the MultiBox loss divides by its face priors, so the terms weigh alike whatever the
crop holds.
"""

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from facedet.box_coding import VARIANCES, decode


@dataclass(frozen=True)
class DistillWeights:
    conf: float = 1.0
    loc: float = 1.0
    features: float = 0.0
    temperature: float = 1.0
    loc_threshold: float = 0.5
    face_weight: float = 1.0  # how much more a prior the teacher calls a face counts in ``conf``
    focus: float = 0.0  # > 0: each prior's ``conf`` term weighted by |teacher - student face probability| ** focus
    boxes: float = 0.0  # weight of the MultiBox loss on the teacher's detections (``teacher_boxes``)
    box_score: float = 0.5  # teacher detections at least this sure are labels for ``boxes``


class HeadInputs:
    """Records the inputs of a detector's ``loc`` head convs (the six detection maps) during
    ``with tap.capture(): model(x)``; ``tap.take()`` hands them over. Outside ``capture`` nothing
    is kept (a copy of the model made for evaluation keeps nothing either)."""

    def __init__(self, model):
        self.maps = []
        self.recording = False
        self._handles = [layer.register_forward_pre_hook(self._record) for layer in model.loc]

    def _record(self, module, inputs):
        if self.recording:
            self.maps.append(inputs[0])

    @contextmanager
    def capture(self):
        self.maps, self.recording = [], True
        try:
            yield self
        finally:
            self.recording = False

    def take(self):
        maps, self.maps = self.maps, []
        return maps

    def close(self):
        for handle in self._handles:
            handle.remove()
        self._handles = []


def distillation_loss(student, teacher, weights=DistillWeights(), student_maps=None, teacher_maps=None):
    """``{"conf", "loc", "features"}`` loss terms (weighted) for outputs ``(loc [B,P,4], conf [B,P,2])``.

    ``student`` / ``teacher`` are the two models' outputs on the same batch; the teacher's are
    constants. Every term is zero when the student's outputs equal the teacher's.
    """
    s_loc, s_conf = student[0].float(), student[1].float()
    t_loc, t_conf = teacher[0].detach().float(), teacher[1].detach().float()
    temperature = float(weights.temperature)
    t_prob = torch.softmax(t_conf / temperature, dim=-1)
    s_log_prob = torch.log_softmax(s_conf / temperature, dim=-1)
    # KL(teacher || student) per prior; xlogy keeps 0 * log 0 at 0.
    kl = (torch.xlogy(t_prob, t_prob) - t_prob * s_log_prob).sum(dim=-1)
    confident = torch.softmax(t_conf, dim=-1)[..., 1] >= weights.loc_threshold
    denominator = max(int(confident.sum()), s_loc.shape[0])
    if weights.face_weight != 1.0:
        kl = torch.where(confident, kl * weights.face_weight, kl)
    if weights.focus:
        # Where the student disagrees most (a face it misses, a box on nothing): as focal loss does.
        gap = (torch.softmax(t_conf, dim=-1)[..., 1] - torch.softmax(s_conf.detach(), dim=-1)[..., 1]).abs()
        kl = kl * gap ** weights.focus
    terms = {"conf": weights.conf * temperature**2 * kl.sum() / denominator}
    if confident.any():
        terms["loc"] = weights.loc * F.smooth_l1_loss(s_loc[confident], t_loc[confident], reduction="sum") / denominator
    else:
        terms["loc"] = s_loc.sum() * 0.0
    if weights.features and student_maps:
        terms["features"] = weights.features * sum(
            F.mse_loss(s.float(), t.detach().float()) for s, t in zip(student_maps, teacher_maps)) / len(student_maps)
    else:
        terms["features"] = s_loc.sum() * 0.0
    return terms


def teacher_boxes(teacher, priors, score=0.5, nms_iou=0.3, variances=VARIANCES):
    """Per image of the batch, the teacher's face boxes (normalised x1, y1, x2, y2; score >=
    ``score``, greedy NMS at ``nms_iou``, as ``detect`` keeps them): labels for the MultiBox loss.

    ``teacher`` is its ``(loc [B, P, 4], conf [B, P, 2])``; ``priors [P, 4]`` cx, cy, w, h.
    """
    from facedet.nms import nms

    loc, conf = teacher[0].detach().float(), teacher[1].detach().float()
    probability = torch.softmax(conf, dim=-1)[..., 1]
    boxes = []
    for b in range(loc.shape[0]):
        sure = torch.nonzero(probability[b] >= score).flatten()
        if not len(sure):
            boxes.append(loc.new_zeros((0, 4)))
            continue
        decoded = decode(loc[b, sure], priors[sure].to(loc), variances)
        kept = nms(decoded.cpu().numpy(), probability[b, sure].cpu().numpy(), nms_iou)
        boxes.append(decoded[torch.as_tensor(kept, device=decoded.device)].clamp(0.0, 1.0))
    return boxes


class Teacher(nn.Module):
    """A frozen copy of a detector that answers ``(outputs, head input maps)`` for a batch."""

    def __init__(self, model):
        super().__init__()
        self.model = model.eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        self.tap = HeadInputs(self.model)

    def train(self, mode=True):  # always in inference mode (BatchNorm running statistics)
        return super().train(False)

    @torch.no_grad()
    def forward(self, images):
        with self.tap.capture():
            outputs = self.model(images)
        return outputs, self.tap.take()


def capturing(tap):
    """``tap.capture()``, or nothing to do when there is no tap."""
    return tap.capture() if tap is not None else nullcontext()


def weight_distance(student, teacher):
    """Sum of squared differences between the student's parameters and the teacher's of the same
    name and shape (L2-SP, Li et al. 2018): pulls the student towards the starting point."""
    reference = dict(teacher.named_parameters())
    terms = [(parameter - reference[name].detach()).pow(2).sum() for name, parameter in student.named_parameters()
             if name in reference and reference[name].shape == parameter.shape]
    return torch.stack(terms).sum() if terms else next(student.parameters()).sum() * 0.0
