"""Numeric options of both command lines: argparse ``type=`` helpers that check the range.

Every numeric option must be a finite number within its range: ``nan``, ``inf`` and out-of-range
values are refused when the arguments are parsed, before any work (the parser turns the message
into one ``error: argument --x: ...`` line). ``range_problem`` is the check itself; settings that
do not come from the command line (``pruning.train.TrainConfig``) use it too. Torch-free.
"""

import argparse
import math
import numbers

MAX_SCALE = 16.0  # largest --scale the commands accept (the network input is capped anyway)
MAX_SEED = 2**32 - 1  # seeds must suit every generator they reach (NumPy, torch, Python)


def range_problem(value, low=None, high=None, low_open=False, high_open=False):
    """What is wrong with ``value`` (``"must be at least 1"`` ...), or None when it is a finite
    number within [low, high] (``low_open``/``high_open``: the bound itself excluded)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return "must be a number"
    if not isinstance(value, numbers.Integral) and not math.isfinite(value):  # huge ints do not fit a float
        return "must be a finite number"
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        return "must be " + describe_range(low, high, low_open, high_open)
    return None


def describe_range(low=None, high=None, low_open=False, high_open=False):
    """``"at least 0"``, ``"above 0 and at most 16"``, ``"between 0 and 1"`` ..."""
    parts = []
    if low is not None and high is not None and not (low_open or high_open):
        return f"between {_text(low)} and {_text(high)}"
    if low is not None:
        parts.append(f"above {_text(low)}" if low_open else f"at least {_text(low)}")
    if high is not None:
        parts.append(f"below {_text(high)}" if high_open else f"at most {_text(high)}")
    return " and ".join(parts) or "a finite number"


def _text(bound):
    return str(bound) if isinstance(bound, int) else f"{bound:g}"


def number(kind, low=None, high=None, low_open=False, high_open=False):
    """An argparse ``type=``: text parsed as ``kind`` (int or float), finite and within the range."""

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            expected = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        problem = range_problem(value, low, high, low_open, high_open)
        if problem:
            raise argparse.ArgumentTypeError(f"{problem}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in some messages
    return parse


finite_float = number(float)
probability = number(float, 0.0, 1.0)
positive_int = number(int, 1)
non_negative_int = number(int, 0)
scale = number(float, 0.0, MAX_SCALE, low_open=True)
seed = number(int, 0, MAX_SEED)
