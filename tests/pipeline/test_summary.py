"""The run summary (wordreps/pipeline/summary.py) from the files a run leaves: what it says, and that it reads
each model's manifest once (a full run's manifests hold every utterance's word list)."""
from __future__ import annotations

import json
import pathlib

import numpy as np

from tests.helpers.folders import write_embedding_folder
from wordreps.embeddings.families import family
from wordreps.pipeline.runner import ModelSpec, RunConfig
from wordreps.pipeline.summary import write_summary


def test_summary_reads_each_manifest_once(tmp_path, monkeypatch):
    out = tmp_path / "out"
    cfg = RunConfig(models=[ModelSpec(family("hf-text"), "m-a", "a"), ModelSpec(family("glove"), "g.txt", "b")],
                    textgrid_path="", audio_root_16k="", audio_root_24k="", alignments_dir="", out_root=str(out),
                    keys_path=str(out / "words_in_order.json"), measures=["linear"])
    utts = {"u1": ["the", "cat"], "u2": ["sat"]}
    arrays = {u: np.ones((2, len(w), 4), dtype=np.float32) for u, w in utts.items()}
    write_embedding_folder(cfg.embeddings_dir, "a", utts, arrays)
    arrays["u1"][:, 1] = np.nan  # "cat" has no vector in b
    write_embedding_folder(cfg.embeddings_dir, "b", utts, arrays, family="glove")
    pair = cfg.results_dir / "cka" / "a__vs__b"
    pair.mkdir(parents=True)
    (pair / "linear.json").write_text(json.dumps({
        "model1": {"name": "a", "layers": [0, 1]}, "model2": {"name": "b", "layers": [0, 1]}, "num_rows": 3,
        "values": [[0.1, 0.2], [0.9, None]]}))

    reads: list[str] = []
    read_text = pathlib.Path.read_text

    def counting(self, *args, **kwargs):
        reads.append(self.name)
        return read_text(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "read_text", counting)
    text = write_summary(cfg, [], 1.0).read_text()
    assert reads.count("manifest.json") == 2  # one per model (7 before: the table, the missing count, too-short, GloVe)
    assert reads.count("linear.json") == 1
    assert "| a | text | `a` | 2 | 4 | 0 |" in text and "| b | glove | `b` | 2 | 4 | 1 |" in text
    assert "highest linear CKA 0.900 at layers (1, 0)" in text
