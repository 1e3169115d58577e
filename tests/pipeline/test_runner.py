"""The reproduction runner's plan (wordreps/pipeline/runner.py), built without running anything."""
from __future__ import annotations

from argparse import Namespace
from pathlib import Path

import pytest

from wordreps.alignments.geometry import default_alignment_file, geometry_for_model
from wordreps.pipeline import runner as P


def _args(tmp_path, **over) -> Namespace:
    args = dict(models=None, out_root=str(tmp_path / "out"), device="cpu", units="words", glove_oov=None,
                precision=None, num_threads=2, no_progress=True, skip_too_short=False, no_download=True,
                glove="g.txt", beats_checkpoint=None, torch_compile=False)
    args.update(over)
    return Namespace(**args)


def _plan(cfg) -> list[tuple]:
    # a Step's done-check is a new closure each time: compare what the user sees of it
    return [(s.name, s.script, s.args, s.outputs, type(s)) for s in P.build_plan(cfg)]


@pytest.mark.parametrize("units", ["words", "phones"])
def test_build_plan_twice_gives_the_same_plan(tmp_path, units):
    """build_plan leaves its config as it was: with phones it used to drop the text models from cfg.models, so
    a second plan lost the steps that say they were left out."""
    cfg = P.demo_config(_args(tmp_path, units=units))
    models = list(cfg.models)
    first = _plan(cfg)
    assert _plan(cfg) == first and cfg.models == models
    skipped = [name for name, script, *_ in first if not script]
    assert len(skipped) == (2 if units == "phones" else 0)  # GloVe and MiniLM have no phones


def test_both_runs_take_the_command_line_alike(tmp_path):
    """thesis_config and demo_config share one builder: the same flags reach both; only the defaults named
    for each differ (the demo's precision is float32, so the figures the docs quote do not depend on the CPU)."""
    thesis = P.thesis_config(_args(tmp_path, units="phones", glove_oov="compose"))
    demo = P.demo_config(_args(tmp_path, units="phones", glove_oov="compose"))
    for cfg in (thesis, demo):
        assert (cfg.device, cfg.units, cfg.num_threads, cfg.no_progress, cfg.explicit_models) == \
            ("cpu", "phones", 2, True, False)
        assert cfg.extra_step_args == {"glove": ["--oov", "compose"]}
        assert Path(cfg.keys_path) == tmp_path / "out" / "phones_in_order.json"
    assert (thesis.precision, demo.precision) == ("auto", "float32")
    assert P.demo_config(_args(tmp_path, precision="bfloat16")).precision == "bfloat16"
    assert thesis.download is False and thesis.alignments_dir == "alignments"
    # the runner looks for the alignment file alignments_and_trans.py writes by default
    geo = geometry_for_model("wav2vec2")
    assert P.alignment_path_for(thesis, geo) == Path(default_alignment_file(geo, "phones"))
