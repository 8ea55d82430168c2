"""pruning: filter pruning of the EXTD and EResFD face detectors (the paper's FPGM / L1 soft filter
pruning, network slimming, Torch-Pruning criteria), fine-tuning, compaction and a results store.

Public API (imported lazily, so ``import pruning`` is cheap):

- ``CRITERIA``: ``{name: Criterion}`` (``fpgm``, ``l1``, ``l2``, ``taylor``, ``random``, ``slimming``).
- ``one_shot_prune(model, criterion, rate) -> masks``: mask the selected filters in place;
  masks are ``{conv name: BoolTensor[out_channels]}`` (True = kept).
- ``select_filters(model, criterion, rate)`` / ``layer_selection(model, criterion, rate)``:
  ``{layer: removed filter indices}``, the model untouched. ``rate`` is one rate or ``{conv name:
  rate}``; ``group_layer_rates(detector, group_rates)`` turns B-FPGM's six group rates into those
  (``pruning.rates``).
- ``rate_effects(model, criterion, rates) -> {rate: RateEffect}``: how many filters each rate
  really removes, and which rates make the same model (small layers round nearby rates alike).
- ``apply_masks``, ``masks_of``: put masks on a model, read them back from its zero filters.
- ``compact_model(model) -> CompactResult``: physically remove pruned channels (equal outputs).
- ``export_onnx(model, path)``, ``model_costs(model)``: deployment and cost figures.
- ``TrainConfig`` and ``pruning.train.train(config, run_dir, resume=False, progress=None,
  cancel=None, store=None)``: soft filter pruning + fine-tuning, resumable. The config holds its
  ``schedule`` (``pruning.schedule.Schedule``: epochs, learning rates, pruning steps);
  ``TrainConfig.from_settings(**flat)`` builds one from flat settings (``epochs=30, lr=1e-4 ...``).
- ``preset_config(name, **settings) -> TrainConfig``: the ``paper`` and ``quick`` presets
  (``pruning.presets``); the quick one trains on unlabelled photos, distilled from the dense model
  (``pruning.distill``, ``pruning.photos``).
- ``agreement``, ``detector_agreement``: a model's AP against its teacher's detections on
  held-out photos (``pruning.agreement``).
- ``SessionConfig``, ``run_session``, ``SessionQueue``, ``shared_queue()``: sessions for the app,
  with progress callbacks (step, loss, epoch, ETA) and cancellation, one at a time in a
  background thread; ``shared_queue()`` is the process-wide queue that survives page reloads.
- ``ResultsStore``: the SQLite store of every run.
"""

_EXPORTS = {
    "CRITERIA": "pruning.criteria",
    "PAPER_CRITERIA": "pruning.criteria",
    "one_shot_prune": "pruning.criteria",
    "select_filters": "pruning.criteria",
    "layer_selection": "pruning.criteria",
    "rate_effects": "pruning.criteria",
    "group_layer_rates": "pruning.rates",
    "layer_rates": "pruning.rates",
    "apply_masks": "pruning.masks",
    "masks_of": "pruning.masks",
    "compact_model": "pruning.compact",
    "CompactResult": "pruning.compact",
    "export_onnx": "pruning.deploy",
    "onnx_session": "pruning.deploy",
    "model_costs": "pruning.costs",
    "SessionConfig": "pruning.session",
    "run_session": "pruning.session",
    "SessionQueue": "pruning.session",
    "shared_queue": "pruning.session",
    "TrainConfig": "pruning.train",
    "preset_config": "pruning.presets",
    "PRESETS": "pruning.presets",
    "agreement": "pruning.agreement",
    "detector_agreement": "pruning.agreement",
    "ResultsStore": "pruning.store",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pruning' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
