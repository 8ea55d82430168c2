"""Deep links to a comparison: the Compare page's choices as query parameters, and back.

``?arch=eresfd&source=published&criterion=fpgm&rate=30&sample=office-group-13.jpg`` reopens that
comparison (``groups=r1,...,r6``: a one-shot prune at group rates). Parameters only name values; the page checks each against what it offers when it
draws the widget (``app_support.page.restore``), so a stale or mistyped link falls back to the
defaults instead of failing.
"""

from app_support.facts import CUSTOM_SCALE_RANGE

# Per source, the widgets that ``criterion`` and ``rate`` stand for.
SOURCE_KEYS = {
    "published": {"criterion": "criterion", "rate": "rate"},
    "oneshot": {"criterion": "oneshot_criterion", "rate": "oneshot_rate", "groups": "oneshot_group_rates"},
    "session": {"run": "session"},
    "bfpgm": {"rate": "bfpgm_rate"},
    "peer": {"peer": "peer"},
}
TEXT_PARAMS = ("criterion", "peer", "groups")  # the others are numbers
PLAIN_KEYS = ("arch", "left", "source", "sample", "scale")
# Every widget key a link can set.
CHOICE_KEYS = PLAIN_KEYS + ("criterion", "rate", "oneshot_criterion", "oneshot_rate", "oneshot_group_rates", "session",
                            "bfpgm_rate", "peer", "threshold", "scale_custom")


def params_for(choices):
    """Query parameters (all strings) for Compare's choices, a dict of widget keys (``arch``, ``left``,
    ``source``, ``sample``, ``criterion``/``rate`` or ``oneshot_*`` or ``session`` or ``bfpgm_rate`` or
    ``peer``, ``threshold``,
    ``scale``, ``scale_custom``): only those that apply to the chosen source and scale."""
    params = {name: str(choices[name]) for name in PLAIN_KEYS if choices.get(name) is not None}
    for name, key in SOURCE_KEYS.get(choices.get("source"), {}).items():
        if choices.get(key) not in (None, ""):
            params[name] = str(choices[key])
    if choices.get("scale") == "custom" and choices.get("scale_custom") is not None:
        params["scale"] = f"{float(choices['scale_custom']):g}"
    if choices.get("threshold") is not None:
        params["threshold"] = f"{float(choices['threshold']):.2f}"
    return params


def choices_from(params, current_source=None):
    """{widget key: value} that query ``params`` ask for (values parsed, not yet checked against the
    options); ``criterion``/``rate`` go to the widgets of the link's source, else of ``current_source``."""
    choices = {name: params[name] for name in ("arch", "left", "source", "sample") if params.get(name)}
    source = choices.get("source", current_source)
    for name, key in SOURCE_KEYS.get(source, {}).items():
        if params.get(name):
            value = params[name] if name in TEXT_PARAMS else _number(params[name], int)
            if value is not None:
                choices[key] = value
    threshold = _number(params.get("threshold"), float)
    if threshold is not None:
        choices["threshold"] = round(min(max(round(threshold / 0.05) * 0.05, 0.05), 0.95), 2)  # the slider's steps
    scale = params.get("scale")
    if scale:
        custom = _number(scale, float)
        if custom is None or scale == "1":
            choices["scale"] = scale
        else:
            low, high = CUSTOM_SCALE_RANGE
            choices["scale"], choices["scale_custom"] = "custom", min(max(custom, low), high)
    return choices


def _number(text, kind):
    try:
        return kind(text)
    except (TypeError, ValueError):
        return None
