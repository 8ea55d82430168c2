"""torch's CPU thread count, changed only where that changes nobody else's work.

``torch.set_num_threads`` is process-wide: a pruning session that the app runs in a server thread
would change what the Compare page's detections in other threads compute with. So a requested
count is applied in the main thread only (the command line), and put back afterwards.
"""

import contextlib
import threading

import torch


@contextlib.contextmanager
def torch_threads(count):
    """Run the block with ``count`` torch threads when called from the main thread; elsewhere (or
    with ``count`` None/0) with whatever the process uses."""
    if not count or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(int(count))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
