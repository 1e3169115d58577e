"""Batch planning, shards from the environment, and the shared command-line flags."""
from __future__ import annotations

import argparse

import pytest

from wordreps.common.errors import UserError
from wordreps.embeddings.base import Utterance
from wordreps.embeddings.extract import (add_extraction_args, plan_batches, resolve_shard, select_shard_items,
                                         shard_from_env)


def _utt(i: int, seconds: float) -> Utterance:
    return Utterance(f"u{i:02d}", f"/a/u{i}.flac", "", int(seconds * 16000), 16000, [])


def _cost(u: Utterance) -> float:
    return u.num_samples / 16000


def test_batches_respect_the_padded_budget_longest_first():
    utts = [_utt(i, s) for i, s in enumerate([3, 9, 1, 4, 4, 2, 8, 5])]
    batches = plan_batches(utts, _cost, budget=10)
    for b in batches:
        assert len(b) * max(_cost(u) for u in b) <= 10 or len(b) == 1
    flat = [u for b in batches for u in b]
    assert sorted(u.utt_id for u in flat) == sorted(u.utt_id for u in utts)  # each exactly once
    assert [_cost(u) for u in flat] == sorted((_cost(u) for u in utts), reverse=True)
    # 9 | 8 | 5+4 (2 x 5 = 10) | 4+3 | 2+1
    assert [[u.utt_id for u in b] for b in batches] == [["u01"], ["u06"], ["u07", "u03"], ["u04", "u00"],
                                                        ["u05", "u02"]]
    # an utterance longer than the budget gets a batch of its own rather than being dropped
    assert [[u.utt_id for u in b] for b in plan_batches([_utt(0, 30), _utt(1, 2)], _cost, budget=10)] == \
        [["u00"], ["u01"]]


def test_the_first_batch_obeys_the_budget_too_when_every_cost_is_below_one():
    # five 0.4 s utterances, budget 1 s: 2 x 0.4 fits, 3 x 0.4 does not -> 2 | 2 | 1, the first batch included
    utts = [_utt(i, 0.4) for i in range(5)]
    assert [len(b) for b in plan_batches(utts, _cost, budget=1.0)] == [2, 2, 1]


def test_padding_sensitive_batches_hold_equal_lengths_only():
    utts = [_utt(i, s) for i, s in enumerate([2, 2, 3, 2, 3, 1])]
    batches = plan_batches(utts, _cost, budget=100, padding_sensitive=True)
    assert all(len({u.num_samples for u in b}) == 1 for b in batches)
    assert sorted(len(b) for b in batches) == [1, 2, 3]


def test_plan_does_not_depend_on_input_order():
    utts = [_utt(i, s) for i, s in enumerate([2, 2, 3, 2, 3, 1, 5, 5])]
    a = plan_batches(utts, _cost, budget=7)
    b = plan_batches(list(reversed(utts)), _cost, budget=7)
    assert [[u.utt_id for u in x] for x in a] == [[u.utt_id for u in x] for x in b]


def test_shards_partition_the_batches():
    items = list(range(11))
    parts = [select_shard_items(items, i, 3) for i in range(3)]
    assert parts == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8]]


@pytest.mark.parametrize("env,expected", [
    ({}, (0, 1)),
    ({"RANK": "2", "WORLD_SIZE": "4", "SLURM_ARRAY_TASK_ID": "9", "SLURM_ARRAY_TASK_COUNT": "10"}, (2, 4)),
    ({"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "5"}, (2, 4)),
    ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "8"}, (3, 8)),
])
def test_shard_from_environment(env, expected):
    assert shard_from_env(env) == expected


def _parser(audio=True):
    p = argparse.ArgumentParser()
    add_extraction_args(p, audio=audio)
    return p


def test_flags_override_environment_and_bad_shard_is_refused():
    args = _parser().parse_args(["--path", "x.json", "--shard_id", "1", "--num_shards", "3"])
    assert resolve_shard(args, {"RANK": "0", "WORLD_SIZE": "8"}) == (1, 3)
    args = _parser().parse_args(["--path", "x.json"])
    assert resolve_shard(args, {"RANK": "5", "WORLD_SIZE": "8"}) == (5, 8)
    args = _parser().parse_args(["--path", "x.json", "--shard_id", "3", "--num_shards", "3"])
    with pytest.raises(UserError, match=r"shard 3 of 3 .* 0\.\.2"):
        resolve_shard(args, {})
    with pytest.raises(UserError, match="RANK"):
        resolve_shard(_parser().parse_args(["--path", "x"]), {"RANK": "a", "WORLD_SIZE": "2"})


def test_text_scripts_get_a_token_budget_and_devices_are_checked(capsys):
    args = _parser(audio=False).parse_args(["--path", "x.json", "--batch_tokens", "100", "--device", "cuda:1"])
    assert args.batch_tokens == 100 and args.device == "cuda:1" and not hasattr(args, "batch_seconds")
    with pytest.raises(SystemExit):
        _parser().parse_args(["--path", "x.json", "--device", "gpu"])
    assert "auto, cpu, cuda, cuda:N" in capsys.readouterr().err
