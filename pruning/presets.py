"""Named training presets: ``paper`` (the paper's schedule, ``TrainConfig``'s defaults) and ``quick``
(a session of a few minutes on a CPU that still brings the pruned detector back on real photos).

The quick preset was found by measurement (``benchmarks/bench_quick_session.py``, README): the
unlabelled sample photos with distillation from the dense model, BatchNorm statistics frozen in
training (batches of 8 crops are too small to estimate them), the rate ramped up over the first
two thirds of the SFP epochs, Adam at 1e-3 without weight decay, crops zoomed out down to a
quarter of the automatic scale (the coarse levels see whole scenes too), the teacher's face priors
weighted twice, and small faces cut from the photos pasted into 60 % of the crops. The command line's
``--preset quick`` and the app's Prune page both start from it; EXTD, about 30 times costlier, gets
fewer epochs of smaller crops (``DETECTOR_PRESETS``).
"""

from facedet.errors import FacedetError

PRESETS = {
    "paper": {},
    "quick": dict(
        distill=True, epochs=60, finetune_epochs=20, prune_every=1, ramp_epochs=40, lr=1e-3, lr_milestones=(),
        finetune_lr=1e-4, optimizer="adam", weight_decay=0.0, batch_size=8, crop_size=320, crops_per_photo=8,
        freeze_batchnorm=True, photo_zoom=(-2.0, 0.5), distill_face_weight=2.0, paste_faces=0.6,
    ),
}
# A preset's settings for one detector, on top of its own. EXTD costs about 30 times EResFD's FLOPs:
# at the quick preset's 80 epochs a session takes two hours on a 2-core CPU, so it gets 8. In those,
# crops of 160 px, four times as many (the same pixels, four times the steps), bring EXTD FPGM 50 %
# back (15-17 of 20 held-out faces, against none with 320-px crops), and faces pasted into 60 % of the
# crops bring 18-19 at every seed of five (README, "Quick sessions"). The teacher's faces weighted twice,
# as for EResFD, tripled EXTD's false boxes (21 against 6 at seed 0): they count once.
DETECTOR_PRESETS = {
    "quick": {"extd": dict(epochs=6, ramp_epochs=4, finetune_epochs=2, crop_size=160, crops_per_photo=32,
                           distill_face_weight=1.0)},
}
# Presets that train on the project's sample photos unless told otherwise.
PHOTO_PRESETS = ("quick",)


def preset_settings(name, detector=None):
    """The ``TrainConfig`` settings of preset ``name`` for ``detector`` (the quick one with its photo
    folder; a detector's own settings, ``DETECTOR_PRESETS``, on top)."""
    if name not in PRESETS:
        raise FacedetError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    settings = dict(PRESETS[name], **DETECTOR_PRESETS.get(name, {}).get(detector, {}))
    if name in PHOTO_PRESETS:
        from facedet.samples import photos_dir

        settings["photos"] = str(photos_dir("train"))
    return settings


def preset_config(name, **settings):
    """A ``TrainConfig`` of preset ``name`` with ``settings`` (flat: ``epochs=6``) on top. Choosing WIDER FACE
    (``wider=``) replaces a preset's photo folder."""
    from pruning.train import TrainConfig

    merged = preset_settings(name, settings.get("detector"))
    if settings.get("wider"):
        merged.pop("photos", None)
    merged.update(settings)
    return TrainConfig.from_settings(**merged)
