"""``python -m pruning prune --weights W --criterion C --rate R | --group-rates ... | --layer-rates F``:
one-shot masks of a checkpoint."""

import json

from facedet import cli_types
from pruning.commands.rate_options import add_rate_options, rates_from_args


def register(subparsers, name, help_text):
    p = subparsers.add_parser(name, help=help_text, description=help_text)
    p.add_argument("--weights", required=True, help="registry name (extd, eresfd ...) or checkpoint path")
    from pruning.criteria import CRITERIA

    p.add_argument("--criterion", required=True, choices=tuple(CRITERIA),
                   help="; ".join(f"{n}: {c.label}, {c.description}" for n, c in CRITERIA.items()))
    add_rate_options(p, required=True)
    p.add_argument("--out", help="save the masked model here (a checkpoint facedet loads)")
    p.add_argument("--seed", type=cli_types.seed, default=0, help="seed of the random criterion (default 0)")
    p.add_argument("--layers", action="store_true",
                   help="also report every prunable layer: filters, removed, their indices (the app's Layers page)")
    p.add_argument("--json", action="store_true", help="print only JSON")
    p.set_defaults(run=run)


def run(args):
    from pruning.criteria import check_criterion

    check_criterion(args.criterion)
    if args.rate is not None:
        rates_from_args(args, None)  # a bad --rate is reported before the checkpoint is read
    from facedet.params import count_parameters
    from facedet.weights import load_model, save_checkpoint
    from pruning.criteria import one_shot_prune
    from pruning.masks import masked_filter_count
    from pruning.rates import describe_rates

    model, ckpt = load_model(args.weights)
    rate = rates_from_args(args, ckpt.arch)
    before = count_parameters(model)
    layers = layer_report(model, args.criterion, rate, args.seed) if args.layers else None
    masks = one_shot_prune(model, args.criterion, rate, seed=args.seed)
    counts = count_parameters(model)
    if args.out:
        save_checkpoint(args.out, model, ckpt.arch, provenance={
            "source": str(ckpt.path), "source_sha256": ckpt.sha256, "criterion": args.criterion,
            **({"layer_rates": rate} if isinstance(rate, dict) else {"rate": rate}), "one_shot": True,
        })
    result = {"parameters": counts.total, "nonzero_parameters": counts.nonzero, "sparsity": round(counts.sparsity, 6)}
    if isinstance(rate, dict):
        result["layer_rates"] = rate
    if layers is not None:
        result["layers"] = layers
    if args.json:
        print(json.dumps(result))
        return 0
    removed = masked_filter_count(masks)
    print(f"{args.weights} ({ckpt.arch}), {args.criterion} at {describe_rates(ckpt.arch, rate)}: "
          f"{removed} filters masked in {len(masks)} layers")
    print(f"  parameters          {counts.total:,}")
    print(f"  nonzero parameters  {counts.nonzero:,} (was {before.nonzero:,})")
    print(f"  sparsity            {counts.sparsity * 100:.2f} %")
    if args.out:
        print(f"  saved               {args.out}")
    if layers is not None:
        width = max(len(row["layer"]) for row in layers)
        print(f"  {'layer':{width}}  filters   rate  removed  indices")
        for row in layers:
            print(f"  {row['layer']:{width}}  {row['filters']:7}  {row['rate']:5.3g}  {len(row['removed']):7}  {row['removed']}")
    return 0


def layer_report(model, criterion, rates, seed=0):
    """``[{layer, filters, rate, removed}]`` for every prunable conv, in module order."""
    from pruning.criteria import layer_selection
    from pruning.graph import prunable_convs
    from pruning.rates import layer_rates

    selection = layer_selection(model, criterion, rates, seed=seed)
    per_layer = layer_rates(model, rates)
    return [{"layer": name, "filters": conv.out_channels, "rate": per_layer[name], "removed": selection[name]}
            for name, conv in prunable_convs(model)]
