"""EXTD: Extremely Tiny Face Detector (Yoo et al., 2019), the 64-channel PReLU variant.

One shallow MobileNetV2-style backbone is applied again and again: the first pass (stem + 5
blocks) gives the stride-4 map, and each further pass of blocks 2-5 halves the resolution, giving
six maps (strides 4 ... 128) from one set of weights. A top-down path (bilinear upsampling,
depthwise-separable conv, add) enriches the high-resolution maps, and a 3x3 SSD head predicts one
box and one face score per location. The smallest-stride classifier uses a max-out background
(three background logits reduced by max), as in S3FD.

Module names follow the authors' released checkpoints so that their state dicts load strictly.
"""

import torch.nn as nn
import torch.nn.functional as F

from facedet.models.heads import ssd_head
from facedet.models.registry import DetectorSpec, register_detector

CHANNELS = 64
NUM_LEVELS = 6
MAXOUT_BACKGROUND = 3


def conv_bn_prelu(in_ch, out_ch, stride):
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.PReLU(),
    )


class InvertedResidual(nn.Module):
    """MobileNetV2 block with PReLU; expansion 1 skips the 1x1 expansion conv.

    The depthwise convs carry a bias (as in the released weights); the 1x1 convs do not.
    """

    def __init__(self, in_ch, out_ch, stride, expansion):
        super().__init__()
        hidden = in_ch * expansion
        self.use_residual = stride == 1 and in_ch == out_ch
        layers = []
        if expansion != 1:
            layers += [nn.Conv2d(in_ch, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.PReLU()]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden),
            nn.BatchNorm2d(hidden),
            nn.PReLU(),
            nn.Conv2d(hidden, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        out = self.conv(x)
        return x + out if self.use_residual else out


def upsample_block(channels):
    """Depthwise 3x3 + pointwise 1x1 + BN + ReLU applied after bilinear upsampling."""
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, 1, 1, groups=channels, bias=False),
        nn.Conv2d(channels, channels, 1, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
    )


class EXTD(nn.Module):
    arch = "extd"

    def __init__(self, num_classes=2):
        super().__init__()
        c = CHANNELS
        # base[0] stem (stride 2); base[1..5] blocks; base[2..5] are the reused part (stride 2 overall).
        self.base = nn.ModuleList(
            [
                conv_bn_prelu(3, c, 2),
                InvertedResidual(c, c, 1, 1),
                InvertedResidual(c, c, 1, 2),
                InvertedResidual(c, c, 1, 2),
                InvertedResidual(c, c, 1, 4),
                InvertedResidual(c, c, 2, 4),
            ]
        )
        self.upfeat = nn.ModuleList([upsample_block(c) for _ in range(NUM_LEVELS - 1)])
        self.loc = nn.ModuleList([nn.Conv2d(c, 4, 3, padding=1) for _ in range(NUM_LEVELS)])
        first_conf = nn.Conv2d(c, MAXOUT_BACKGROUND + num_classes - 1, 3, padding=1)
        self.conf = nn.ModuleList([first_conf] + [nn.Conv2d(c, num_classes, 3, padding=1) for _ in range(NUM_LEVELS - 1)])

    def features(self, x):
        """The six detection maps, finest (stride 4) first."""
        for block in self.base:
            x = block(x)
        bottom_up = [x]
        for _ in range(NUM_LEVELS - 1):
            for block in self.base[2:]:
                x = block(x)
            bottom_up.append(x)
        # Top-down: start from the coarsest map, upsample into each finer one.
        top = bottom_up[-1]
        maps = [top]
        for level, upfeat in zip(range(NUM_LEVELS - 2, -1, -1), self.upfeat):
            lateral = bottom_up[level]
            up = F.interpolate(top, size=lateral.shape[2:], mode="bilinear", align_corners=False)
            top = upfeat(up) + lateral
            maps.append(top)
        return maps[::-1]

    def forward(self, x):
        return ssd_head(self.features(x), self.loc, self.conf, MAXOUT_BACKGROUND, activation=None)


# B-FPGM's six layer groups (its main_baysian_prune.py). Group 6 is the detection head, which this
# project never prunes: its rate may only be one that removes no head filter (pruning.rates).
LAYER_GROUPS = (("base.0", "base.1"), ("base.2", "base.3"), ("base.4",), ("base.5",), ("upfeat",), ("loc", "conf"))

SPEC = register_detector(DetectorSpec(
    name="extd", display_name="EXTD", build=EXTD, auto_area=1700 * 1200, optimizer="sgd", colour="#0072B2",
    layer_groups=LAYER_GROUPS,
    paper="Yoo, Dan, Yun: EXTD: Extremely Tiny Face Detector via Iterative Filter Reuse (2019)",
))
