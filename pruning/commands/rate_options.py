"""The rate options of ``python -m pruning prune|train``: ``--rate R``, ``--group-rates r1,...,r6``
or ``--layer-rates FILE.json`` (one of them)."""

from facedet import cli_types


def add_rate_options(parser, required):
    rates = parser.add_mutually_exclusive_group(required=required)
    rates.add_argument("--rate", type=cli_types.finite_float,
                       help="share of each prunable layer's filters to remove (at least 0, below 1)")
    rates.add_argument("--group-rates", metavar="R1,...,R6",
                       help="one rate per layer group of the detector (B-FPGM's six; README, 'Non-uniform rates')")
    rates.add_argument("--layer-rates", metavar="FILE.json",
                       help="a JSON object {conv name: rate}; layers not named keep their filters")


def rates_from_args(args, arch):
    """A float (``--rate``), ``{conv name: rate}`` (``--group-rates``, ``--layer-rates``), or None
    when none was given; checked against detector ``arch`` (one-line errors)."""
    from facedet.models import create_model
    from pruning.graph import prunable_convs
    from pruning.rates import (check_layer_rates, check_rate, group_layer_rates, parse_group_rates,
                               read_layer_rates)

    if args.group_rates is not None:
        return group_layer_rates(arch, parse_group_rates(args.group_rates))
    if args.layer_rates is not None:
        names = [name for name, _ in prunable_convs(create_model(arch))]
        return check_layer_rates(read_layer_rates(args.layer_rates), names, arch)
    return None if args.rate is None else check_rate(args.rate)
