"""Test-wide settings and fixtures."""

import os

import pytest

# torch's OpenMP threads busy-wait by default; on a shared 2-core machine that makes every step
# many times slower. Passive waiting must be set before torch is first imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module: with other processes on the 2 cores, two threads can be
    many times slower than one. Restores the previous setting afterwards."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
