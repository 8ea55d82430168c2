"""EResFD: Efficient ResNet Face Detector (Jeong et al., 2022), width multiplier 1/16.

A ResNet with very few channels (8-16) built from standard 3x3 convolutions: a stride-4 stem,
a residual block, then five stages of residual blocks each halving the resolution. A separated
feature pyramid (weighted fusion of lateral, upsampled and original maps) and a cascade context
prediction module per level (three chained 3x3 branches, concatenated) feed a 1x1 SSD head.

Module names follow the authors' released checkpoints so that their state dicts load strictly.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from facedet.models.heads import ssd_head
from facedet.models.registry import DetectorSpec, register_detector

WIDTH = 16  # 256 * 1/16
STEM = 8  # 128 * 1/16
NUM_LEVELS = 6
MAXOUT_BACKGROUND = 3
# Residual blocks per stage of the detection encoder (stages 1..5, each starting at stride 2).
STAGE_DEPTHS = (3, 3, 3, 2, 2)


def conv_bn(in_ch, out_ch, kernel, stride=1, relu=True):
    layers = [nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(out_ch)]
    if relu:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class ConvBlock(nn.Module):
    """Basic residual block (3x3, 3x3) with a 1x1 projection shortcut when the shape changes.

    There is no activation after the addition, as in the released model.
    """

    def __init__(self, in_ch, out_ch, stride=1):
        super().__init__()
        if in_ch != out_ch or stride != 1:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))
        else:
            self.shortcut_layer = None
        self.res_layer = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(),
            nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False),
            nn.BatchNorm2d(out_ch),
        )

    def forward(self, x):
        shortcut = x if self.shortcut_layer is None else self.shortcut_layer(x)
        return self.res_layer(x) + shortcut


class ContextModule(nn.Module):
    """Cascade context prediction: branches of C/2, C/4, C/4 channels, each fed by the previous."""

    def __init__(self, channels):
        super().__init__()
        half, quarter = channels // 2, channels // 4
        self.res_branch1 = conv_bn(channels, half, 3)
        self.res_branch2 = nn.Sequential(*conv_bn(half, quarter, 3), *conv_bn(quarter, quarter, 3))
        self.res_branch3 = nn.Sequential(*conv_bn(quarter, quarter, 3), *conv_bn(quarter, quarter, 3))

    def forward(self, x):
        b1 = self.res_branch1(x)
        b2 = self.res_branch2(b1)
        b3 = self.res_branch3(b2)
        return torch.cat((b1, b2, b3), dim=1)


class ConvUnit(nn.Module):
    """conv + BN + ReLU wrapped as ``.conv`` (the checkpoints' naming)."""

    def __init__(self, in_ch, out_ch, kernel):
        super().__init__()
        self.conv = conv_bn(in_ch, out_ch, kernel)

    def forward(self, x):
        return self.conv(x)


class SeparatedFPN(nn.Module):
    """Feature pyramid whose four fine levels and the coarse levels take separate top-down paths.

    Fusion is a learned, normalised weighted average (``w1``: 2 weights for each of 9 fusion points,
    ReLU'd and normalised per point). With the split at level 4: the coarse path fuses lateral 4
    with level 5; the fine path starts by fusing lateral 3 with the *original* level-4 map and runs
    down to level 0; intermediate 3x3 convs refine levels 1-4, which are then fused once more with
    their original (pre-pyramid) maps. Level 5 passes through unchanged.
    """

    SPLIT = 4
    EPS = 1e-4

    def __init__(self, channels):
        super().__init__()
        self.laterals = nn.ModuleList([ConvUnit(channels, channels, 1) for _ in range(5)])
        self.itm = nn.ModuleList([ConvUnit(channels, channels, 3) for _ in range(4)])
        self.w1 = nn.Parameter(torch.full((2, 9), 0.5))
        # ReLUs as modules (no parameters, so no checkpoint keys): code that must see or replace
        # them (compaction's linear probe) can do so on this model alone, never process-wide.
        self.weight_relu = nn.ReLU()

    def _fuse(self, a, b, weight):
        return (weight[0] * a + weight[1] * b) / (weight[0] + weight[1] + self.EPS)

    def _fuse_upsampled(self, lateral, coarse, weight):
        coarse = F.interpolate(coarse, size=lateral.shape[2:], mode="nearest")
        return self._fuse(lateral, coarse, weight)

    def forward(self, maps):
        w = self.weight_relu(self.w1)
        w = w / (w.sum(dim=0) + self.EPS)
        split = self.SPLIT
        lateral = [layer(m) for layer, m in zip(self.laterals, maps[:-1])] + [maps[-1]]

        coarse = self._fuse_upsampled(lateral[split], lateral[split + 1], w[:, split])
        fine = [self._fuse_upsampled(lateral[split - 1], maps[split], w[:, split - 1])]
        for level in range(split - 2, -1, -1):
            fine.insert(0, self._fuse_upsampled(lateral[level], fine[0], w[:, level]))
        for level in range(1, split):
            fine[level] = self._fuse(self.itm[level - 1](fine[level]), maps[level], w[:, level + 4])
        coarse = self._fuse(self.itm[split - 1](coarse), maps[split], w[:, split + 4])
        return fine + [coarse, lateral[split + 1]]


class DetEncoder(nn.Module):
    def __init__(self, channels):
        super().__init__()
        for stage, depth in enumerate(STAGE_DEPTHS, start=1):
            blocks = [ConvBlock(channels, channels, stride=2)] + [ConvBlock(channels, channels) for _ in range(depth - 1)]
            self.add_module(f"b2_{stage}", nn.Sequential(*blocks))
        self.fpn = SeparatedFPN(channels)
        for level in range(NUM_LEVELS):
            self.add_module(f"FEM_{level}", ContextModule(channels))

    def forward(self, x):
        maps = [x]
        for stage in range(1, len(STAGE_DEPTHS) + 1):
            maps.append(getattr(self, f"b2_{stage}")(maps[-1]))
        maps = self.fpn(maps)
        return [getattr(self, f"FEM_{level}")(m) for level, m in enumerate(maps)]


class Backbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = conv_bn(3, STEM, 5, stride=4, relu=False)
        self.conv2 = conv_bn(STEM, STEM, 3)
        self.conv3 = conv_bn(STEM, WIDTH, 3)
        self.conv4 = ConvBlock(WIDTH, WIDTH)
        self.m0 = DetEncoder(WIDTH)

    def forward(self, x):
        return self.m0(self.conv4(self.conv3(self.conv2(self.conv1(x)))))


class EResFD(nn.Module):
    arch = "eresfd"

    def __init__(self, num_classes=2):
        super().__init__()
        self.base = Backbone()
        self.loc = nn.ModuleList([nn.Conv2d(WIDTH, 4, 1) for _ in range(NUM_LEVELS)])
        first_conf = nn.Conv2d(WIDTH, MAXOUT_BACKGROUND + num_classes - 1, 1)
        self.conf = nn.ModuleList([first_conf] + [nn.Conv2d(WIDTH, num_classes, 1) for _ in range(NUM_LEVELS - 1)])
        self.head_relu = nn.ReLU()  # a module for the reason given in SeparatedFPN

    def features(self, x):
        return self.base(x)

    def forward(self, x):
        return ssd_head(self.features(x), self.loc, self.conf, MAXOUT_BACKGROUND, activation=self.head_relu)


# B-FPGM's EResFD files also hold the encoder's modules as a flat list (layer1..12: the five stages,
# the FPN, the six context modules) and the head convs as loc0..5/conf0..5. Read from the files
# themselves: each such key shares its storage with the canonical key below (tests/test_bfpgm.py).
KEY_ALIASES = (
    *((f"base.m0.layer{stage}.", f"base.m0.b2_{stage}.") for stage in range(1, len(STAGE_DEPTHS) + 1)),
    (f"base.m0.layer{len(STAGE_DEPTHS) + 1}.", "base.m0.fpn."),
    *((f"base.m0.layer{len(STAGE_DEPTHS) + 2 + level}.", f"base.m0.FEM_{level}.") for level in range(NUM_LEVELS)),
    *((f"{head}{level}.", f"{head}.{level}.") for head in ("loc", "conf") for level in range(NUM_LEVELS)),
)

# B-FPGM's six layer groups (its main_bayesian_prune.py, "6 Pruning Groups"), with its names
# base.m0.layer1..5 / layer7..12 written as the canonical b2_1..5 / FEM_0..5 (KEY_ALIASES). The
# released checkpoints fit a grouping shifted by one module at three places (README, "Non-uniform rates").
LAYER_GROUPS = (
    ("base.conv1", "base.conv2", "base.conv3"),
    ("base.conv4", "base.m0.b2_1"),
    ("base.m0.b2_2", "base.m0.b2_3"),
    ("base.m0.b2_4", "base.m0.b2_5"),
    ("base.m0.fpn",),
    tuple(f"base.m0.FEM_{level}" for level in range(NUM_LEVELS)),
)

SPEC = register_detector(DetectorSpec(
    name="eresfd", display_name="EResFD", build=EResFD, auto_area=1200 * 1100, optimizer="adam", colour="#D55E00",
    key_aliases=KEY_ALIASES, layer_groups=LAYER_GROUPS,
    paper="Jeong, Yoo, Kim, Kwak: EResFD: Rediscovery of the Effectiveness of Standard Convolution for "
          "Lightweight Face Detection (2022)",
))
