"""Fixtures for the whole suite. The tests are a package (tests/__init__.py), so helpers import as tests.helpers.*."""
import pytest


@pytest.fixture
def one_torch_thread():
    """Tiny tensors: one thread, so a busy machine's other processes cannot stall a second spinning thread."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)
