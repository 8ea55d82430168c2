"""Cancellation of long work: callers pass a ``threading.Event`` or any callable returning True."""


def is_cancelled(cancel):
    if cancel is None:
        return False
    if hasattr(cancel, "is_set"):
        return cancel.is_set()
    return bool(cancel())
