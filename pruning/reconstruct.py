"""Layer-wise reconstruction: after filters are pruned, refit every convolution to the teacher.

Pruning half the filters of every layer at once leaves a network whose outputs are far from the
dense one's (EResFD at FPGM 50 %: no face found), and a few minutes of training cannot bring it
back from there. Reconstruction (as in He et al. 2017, "Channel pruning for accelerating very
deep neural networks"; ThiNet) moves the start point close to the teacher without any label:
convolution by convolution, in the order the network runs them, each kept filter's weights (and
bias) are refitted by least squares so that, on the *pruned* network's own inputs to that layer,
the layer outputs what the dense network's same layer outputs. Later layers are fitted on inputs
that already went through the refitted earlier ones, so errors do not pile up.

Samples are pixels: ``samples`` output positions drawn from a batch of training crops, each with
the input patch the convolution sees there. The fit is a ridge regression pulled towards the
current weights (``ridge`` times the mean diagonal of the normal matrix), so channels that carry
nothing (pruned, hence constant) keep their weights and the fit stays stable. A layer without a
bias hands its fitted bias to the BatchNorm after it (a shift of its running mean), so the
network's structure does not change. Masked filters stay zero.
"""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from pruning.masks import apply_masks

SAMPLES = 20000
RIDGE = 1e-3


class _Stop(Exception):
    """Ends a forward pass once the layer of interest has run."""


def run_order(model, images):
    """Names of the model's convolutions in the order a forward pass runs them."""
    order = []
    hooks = [m.register_forward_hook(lambda module, i, o, name=name: order.append(name))
             for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            model(images[:1])
    finally:
        for hook in hooks:
            hook.remove()
    return list(dict.fromkeys(order))


def following_batchnorms(model):
    """``{conv name: the BatchNorm2d registered right after it, over the same channels}``."""
    modules = list(model.named_modules())
    found = {}
    for (name, module), (_, after) in zip(modules, modules[1:]):
        if isinstance(module, nn.Conv2d) and isinstance(after, nn.BatchNorm2d) \
                and after.num_features == module.out_channels:
            found[name] = after
    return found


def _layer_input(model, layer, images):
    """The input of ``layer`` when ``model`` runs on ``images`` (the pass stops there)."""
    got = {}

    def hook(module, inputs, output):
        got["value"] = inputs[0]
        raise _Stop

    handle = layer.register_forward_hook(hook)
    try:
        with torch.no_grad():
            model(images)
    except _Stop:
        pass
    finally:
        handle.remove()
    return got["value"]


def _teacher_samples(teacher, images, samples, rng):
    """``{conv name: (batch, rows, cols, outputs [P, out])}``: for every convolution, ``samples`` output
    positions drawn at random (in the order the network runs them) and the teacher's outputs there,
    from one forward pass (the teacher does not change, so one pass serves every layer)."""
    found = {}

    def hook(module, inputs, output, name):
        n, _, h, w = output.shape
        count = min(int(samples), n * h * w)
        flat = torch.from_numpy(rng.choice(n * h * w, count, replace=False)).to(output.device)
        batch, rows, cols = flat // (h * w), flat % (h * w) // w, flat % w
        found.setdefault(name, (batch, rows, cols, output[batch, :, rows, cols]))

    handles = [m.register_forward_hook(lambda module, i, o, name=name: hook(module, i, o, name))
               for name, m in teacher.named_modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            teacher(images)
    finally:
        for handle in handles:
            handle.remove()
    return found


def _patches(x, conv, batch, rows, cols):
    """``[P, C * kh * kw]``: the input patch ``conv`` reads for each output position, in the
    order of its flattened weights."""
    kh, kw = conv.kernel_size
    (sy, sx), (dy, dx), (py, px) = conv.stride, conv.dilation, conv.padding
    padded = F.pad(x, (px, px, py, py))
    taps = [padded[batch, :, rows * sy + ky * dy, cols * sx + kx * dx] for ky in range(kh) for kx in range(kw)]
    return torch.stack(taps, dim=2).flatten(1)


@torch.no_grad()
def _refit(conv, batchnorm, patches, targets, keep, ridge):
    """Least-squares fit of ``conv``'s kept filters (per group) to ``targets`` [P, out]."""
    groups = conv.groups
    per_in = patches.shape[1] // groups
    per_out = conv.out_channels // groups
    ones = torch.ones(len(patches), 1, dtype=torch.float64, device=patches.device)
    for g in range(groups):
        rows = torch.arange(g * per_out, (g + 1) * per_out, device=keep.device)[keep[g * per_out:(g + 1) * per_out]]
        if not len(rows):
            continue
        a = torch.cat([patches[:, g * per_in:(g + 1) * per_in].double(), ones], dim=1)
        bias = conv.bias[rows] if conv.bias is not None else torch.zeros(len(rows), device=a.device)
        start = torch.cat([conv.weight[rows].flatten(1), bias[:, None]], dim=1).double().T
        normal = a.T @ a
        strength = ridge * normal.diagonal().mean().clamp_min(1e-12)
        eye = torch.eye(len(normal), dtype=normal.dtype, device=normal.device)
        fitted = torch.linalg.solve(normal + strength * eye, a.T @ targets[:, rows].double() + strength * start)
        conv.weight[rows] = fitted[:-1].T.reshape(len(rows), *conv.weight.shape[1:]).to(conv.weight.dtype)
        if conv.bias is not None:
            conv.bias[rows] = fitted[-1].to(conv.bias.dtype)
        elif batchnorm is not None:
            batchnorm.running_mean[rows] -= fitted[-1].to(batchnorm.running_mean.dtype)
        else:  # no place for a bias: refit without one
            plain = torch.linalg.solve(normal[:-1, :-1] + strength * eye[:-1, :-1],
                                       a[:, :-1].T @ targets[:, rows].double() + strength * start[:-1])
            conv.weight[rows] = plain.T.reshape(len(rows), *conv.weight.shape[1:]).to(conv.weight.dtype)


@torch.no_grad()
def reconstruct(student, teacher, images, masks, samples=SAMPLES, ridge=RIDGE, seed=0, progress=None, cancel=None):
    """Refit every convolution of ``student`` (pruned by ``masks``) to ``teacher`` on ``images``
    (a batch of crops), in place; both models run in inference mode. ``progress(done, total)``
    after each layer; ``cancel()`` true stops between layers (the layers so far stay refitted)."""
    was_training = student.training
    student.eval()
    teacher.eval()
    try:
        device = next(student.parameters()).device
        images = images.to(device)
        order = run_order(student, images)
        targets = _teacher_samples(teacher, images, samples, np.random.default_rng(seed))
        layers = dict(student.named_modules())
        batchnorms = following_batchnorms(student)
        for done, name in enumerate(order, start=1):
            if cancel is not None and cancel():
                break
            conv = layers[name]
            batch, rows, cols, outputs = targets[name]
            patches = _patches(_layer_input(student, conv, images), conv, batch, rows, cols)
            keep = masks.get(name, torch.ones(conv.out_channels, dtype=torch.bool)).to(device)
            _refit(conv, batchnorms.get(name), patches, outputs, keep, ridge)
            if progress is not None:
                progress(done, len(order))
        apply_masks(student, masks)
    finally:
        student.train(was_training)
    return student
