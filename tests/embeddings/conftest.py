"""Fixtures shared by the embedding tests: the tiny text models, built once per test process."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.text import UTTERANCES, all_words


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    from wordreps.embeddings.tiny.text import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert", all_words())


@pytest.fixture(scope="session")
def tiny_roberta(tmp_path_factory) -> Path:
    from wordreps.embeddings.tiny.text import DEMO_SENTENCES, build_tiny_roberta

    sentences = list(DEMO_SENTENCES) + [" ".join(ws) for ws in UTTERANCES.values()]
    return build_tiny_roberta(tmp_path_factory.mktemp("models") / "tiny-roberta", sentences)
