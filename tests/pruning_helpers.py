"""Fixtures shared by the pruning tests (import them into a test module to use them)."""

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Two cores shared by several test runs: OpenMP's spinning threads would make this 10x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def stop_sessions():
    """Cancel and wait for every session of the process-wide queue: a test leaves no training thread behind."""
    from pruning.session import shared_queue

    for status in shared_queue().sessions():
        shared_queue().cancel(status.id)
        shared_queue().wait(status.id, timeout=120)
