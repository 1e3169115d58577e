"""Fixtures for the whole suite. The tests are a package (tests/__init__.py), so helpers import as tests.helpers.*."""
import os
from pathlib import Path

import pytest
from hypothesis import settings

from tests.helpers.scripts import REPO
from tests.helpers.text import UTTERANCES, all_words

# Property tests draw the same examples on every run (a failure reproduces; no example database is kept).
# Each test still sets its own max_examples. HYPOTHESIS_PROFILE=explore draws new examples, for a local hunt.
settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture
def one_torch_thread():
    """Tiny tensors: one thread, so a busy machine's other processes cannot stall a second spinning thread."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


# the tiny text models, built once per test process
@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    from wordreps.embeddings.tiny.text import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert", all_words())


@pytest.fixture(scope="session")
def tiny_roberta(tmp_path_factory) -> Path:
    from wordreps.embeddings.tiny.text import DEMO_SENTENCES, build_tiny_roberta

    sentences = list(DEMO_SENTENCES) + [" ".join(ws) for ws in UTTERANCES.values()]
    return build_tiny_roberta(tmp_path_factory.mktemp("models") / "tiny-roberta", sentences)
