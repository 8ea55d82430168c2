"""The SSD-style prediction head shared by both detectors."""

import torch


def ssd_head(maps, loc_layers, conf_layers, maxout_background, activation=None):
    """Apply per-level loc/conf convs and flatten to ``(loc [B,P,4], conf [B,P,2])``.

    Locations are flattened row-major within a level, levels finest first: the order of
    ``facedet.priors.make_priors``. The first level's classifier predicts ``maxout_background``
    background logits and one face logit; the background logits are reduced by max (S3FD's
    max-out background label, which suppresses false positives among the many small anchors).
    """
    locs, confs = [], []
    for level, (x, loc_layer, conf_layer) in enumerate(zip(maps, loc_layers, conf_layers)):
        if activation is not None:
            x = activation(x)
        loc = loc_layer(x)
        conf = conf_layer(x)
        if level == 0:
            background = conf[:, :maxout_background].amax(dim=1, keepdim=True)
            conf = torch.cat((background, conf[:, maxout_background:maxout_background + 1]), dim=1)
        locs.append(loc.permute(0, 2, 3, 1).reshape(loc.shape[0], -1, 4))
        confs.append(conf.permute(0, 2, 3, 1).reshape(conf.shape[0], -1, 2))
    return torch.cat(locs, dim=1), torch.cat(confs, dim=1)
