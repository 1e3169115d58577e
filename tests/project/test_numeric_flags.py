"""Every numeric flag of every script, out of range: refused by the parser (exit 2) with the allowed range.

The table below is checked for completeness against the scripts' source (every ``add_argument`` whose type is a
number), so a new numeric flag without a range, or without a row here, fails this file.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.scripts import REPO, script_env

EXTRACTION_AUDIO = [  # add_extraction_args(parser, audio=True): speech and general-audio scripts
    ("--batch_seconds", "0", "(0.0, 1000000.0]"),
    ("--batch_seconds", "nan", "(0.0, 1000000.0]"),
    ("--num_shards", "0", "[1, 100000]"),
    ("--shard_id", "100000", "[0, 99999]"),
    ("--shard_id", "-1", "[0, 99999]"),
    ("--limit", "0", ">= 1"),
]
COMMON_TORCH = [  # add_common_args(parser, torch=True), also through add_extraction_args unless model=False
    ("--num_threads", "0", "[1, 1024]"),
]
EXTRACTION_TEXT = [  # add_extraction_args(parser, audio=False): text and GloVe scripts
    ("--batch_tokens", "0", "[1, 100000000]"),
    ("--num_shards", "100001", "[1, 100000]"),
    ("--shard_id", "-1", "[0, 99999]"),
    ("--limit", "-3", ">= 1"),
]

# script -> [(flag, out-of-range value(s), the allowed range as the message gives it)]
FLAGS: dict[str, list[tuple[str, str, str]]] = {
    "alignments/alignments_and_trans.py": [
        ("--stride", "0", "(0, 10000]"), ("--stride", "-20", "(0, 10000]"), ("--frame_rate", "-75", "(0, 100000]"),
        ("--hop_samples", "0", "[1, 10000000]"), ("--receptive_field", "0", "[1, 10000000]"),
        ("--sample_rate", "0.5", "[1, 384]"),
    ],
    "datasets/download_librispeech.py": [("--retries", "101", "[0, 100]"), ("--retries", "-1", "[0, 100]"),
                                         ("--retry_wait", "-1", "[0, 600]"), ("--timeout", "0.5", "[1, 3600]")],
    "datasets/make_demo_corpus.py": [("--seed", "-1", "[0, 4294967295]")],
    "datasets/resample_corpus.py": [("--rate", "7999", "[8000, 192000]"), ("--rate", "100", "[8000, 192000]"),
                                    ("--workers", "0", "[1, 256]")],
    "embeddings/speech_embedding.py": [*EXTRACTION_AUDIO, *COMMON_TORCH],
    "embeddings/audio_embeddings.py": [("--max_chunks_per_forward", "0", "[1, 4096]"), *EXTRACTION_AUDIO,
                                       *COMMON_TORCH],
    "embeddings/nlp_embedding.py": [("--max_tokens", "2", "[3, 1000000]"), ("--window_stride", "0", "[1, 1000000]"),
                                    *EXTRACTION_TEXT, *COMMON_TORCH],
    "embeddings/glove_embedding.py": EXTRACTION_TEXT,
    "benchmarks/bench_extract.py": [
        ("--hours", "0", "(0.0, 100.0]"), ("--batch_seconds", "nan", "(0.0, 1000000.0]"),
        ("--seed", "2147483648", "[0, 2147483647]"), ("--thesis_limit", "0", ">= 1"),
        ("--batch_tokens", "0", "[1, 100000000]"), ("--trials", "0", "[1, 100]"),
    ],
    "tools/make_tiny_ast.py": [("--max_length", "15", "[16, 4096]"), ("--seed", "-1", "[0, 2147483647]")],
    "tools/make_tiny_speech.py": [("--seed", "-1", "[0, 2147483647]")],
    "tools/mutation_check.py": [("--sample", "0", "[1, 100000]")],
    "tools/make_tiny_text.py": [("--glove_dim", "0", "[1, 4096]"), ("--glove_oov_every", "-1", ">= 0"),
                                ("--seed", "-1", "[0, 2147483647]")],
    "experiments/experiment_CKA.py": [
        ("--layer1", "-1", ">= 0"), ("--layer2", "-2", ">= 0"), ("--bootstrap", "-1", "[0, 100000]"),
        ("--permutations", "100001", "[0, 100000]"), ("--seed", "4294967296", "[0, 4294967295]"),
        ("--rbf_sample", "3", "[4, 100000]"), ("--rbf_sigma", "0", "> 0"), ("--chunk_rows", "63", "[64, 10000000]"),
        *COMMON_TORCH,
    ],
    "experiments/experiment_ASIF.py": [
        ("--k", "0", ">= 1"), ("--p", "-4", "> 0"), ("--p", "0", "> 0"), ("--query_fraction", "1", "(0, 1)"),
        ("--seed", "-1", "[0, 4294967295]"), ("--chunk_size", "0", "[1, 1000000]"),
        ("--chance_draws", "0", "[1, 1000000]"), *COMMON_TORCH,
    ],
    "benchmarks/bench_cka.py": [
        ("--rows", "3", "[4, 10000000]"), ("--dims", "0:768", "[1, 65536]"), ("--layers1", "0", "[1, 1000]"),
        ("--layers2", "1001", "[1, 1000]"), ("--chunk_rows", "63", "[64, 10000000]"),
        ("--seed", "-1", "[0, 4294967295]"),
    ],
    "benchmarks/bench_busy.py": [("--repeat", "0", "[1, 10000]"), ("--busy", "0", "[1, 1024]"),
                                 ("--trials", "101", "[1, 100]"), ("--child_threads", "0", "[1, 1024]"),
                                 ("--nice", "20", "[-20, 19]")],
    "benchmarks/bench_easyaudio.py": [("--seconds", "0.1", "[0.5, 60.0]")],
    "benchmarks/bench_pipeline.py": [
        ("--repeat", "0", "[1, 10000]"), ("--trials", "101", "[1, 100]"), ("--threads", "0", "[1, 1024]"),
        ("--batch_seconds", "inf", "(0.0, 1000000.0]"), ("--scaling_factors", "0", "[1, 10000]"),
        ("--cka_rows", "3", "[4, 10000000]"), ("--cka_dims", "256:0", "[1, 65536]"),
        ("--cka_layers", "25 0", "[1, 1000]"), ("--gram_max_rows", "3", "[4, 1000000]"),
        ("--cka_tol", "1.5", "[0.0, 1.0]"), ("--seed", "-1", "[0, 2147483647]"),
    ],
    "experiments/experiment_similarity.py": [
        ("--layer1", "-1", ">= 0"), ("--layer2", "-2", ">= 0"), ("--bootstrap", "-1", "[0, 100000]"),
        ("--permutations", "100001", "[0, 100000]"), ("--seed", "4294967296", "[0, 4294967295]"),
        ("--svcca_variance", "0", "(0, 1]"), ("--cca_rank_tol", "1", "(0, 1)"), ("--rsa_sample", "2", "[3, 100000]"),
        ("--rbf_sample", "3", "[4, 100000]"), ("--rbf_sigma", "0", "> 0"), ("--chunk_rows", "63", "[64, 10000000]"),
        *COMMON_TORCH,
    ],
    "experiments/experiment_probe.py": [
        ("--layer", "-1", ">= 0"), ("--top_k", "1", "[2, 1000000]"), ("--test_fraction", "1", "(0, 1)"),
        ("--seed", "-1", "[0, 4294967295]"), ("--l2", "-0.5", ">= 0"), ("--max_iter", "0", "[1, 100000]"),
        *COMMON_TORCH,
    ],
    "benchmarks/bench_measures.py": [
        ("--rows", "3", "[4, 10000000]"), ("--dims", "0:768", "[1, 65536]"), ("--layers1", "0", "[1, 1000]"),
        ("--layers2", "1001", "[1, 1000]"), ("--rsa_sample", "2", "[3, 100000]"),
        ("--chunk_rows", "63", "[64, 10000000]"), ("--seed", "-1", "[0, 4294967295]"),
    ],
    "benchmarks/bench_probe.py": [
        ("--rows", "99", "[100, 10000000]"), ("--dim", "0", "[1, 65536]"), ("--classes", "1", "[2, 100000]"),
        ("--max_iter", "0", "[1, 100000]"), ("--l2", "-1", ">= 0"), ("--noise", "-1", ">= 0"),
        ("--seed", "-1", "[0, 4294967295]"),
    ],
    # no numeric flags (matrix_embeddings.py's --layer is a list such as 0,3,5 or 2-4, checked against the
    # model's depth at run time: tests/embeddings/test_matrices.py::test_bad_flags_and_layers)
    "embeddings/matrix_embeddings.py": [],
    "experiments/reproduce.py": COMMON_TORCH,
}

# Flags that keep a script away from the repository's own files should a range check ever stop refusing
# (argparse stops at the first bad value, so flags after it are never reached while the check works).
SAFE_ARGS = {"datasets/download_librispeech.py": ["--root", "downloads"], "datasets/make_demo_corpus.py": ["--out", "demo"]}
NUMERIC_TYPES = {"int", "float", "int_range", "float_range", "_dims"}
# flag builders that scripts share -> the module holding it (all of that module's numeric flags are the builder's)
SHARED_BUILDERS = {"add_layer_pair_args": REPO / "wordreps" / "analysis" / "compare.py"}

# Runs a script's __main__ once per command line inside one process, exactly as `python3 script.py ARGS` would
# (the script's folder first on sys.path): torch, which some scripts import before parsing, is imported once.
RUNNER = r"""
import contextlib, io, json, os, runpy, sys
script, cases = sys.argv[1], json.loads(sys.argv[2])
sys.path.insert(0, os.path.dirname(script))
results = []
for argv in cases:
    sys.argv = [script, *argv]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            runpy.run_path(script, run_name="__main__")
            code = 0
        except SystemExit as exc:
            code = exc.code
        except BaseException as exc:  # a traceback: reported, and the test fails on it
            code = "raised " + repr(exc)
    results.append([code, err.getvalue()])
print(json.dumps(results))
"""


@pytest.mark.parametrize("script", [s for s, rows in FLAGS.items() if rows])
def test_numeric_flags_out_of_range_are_refused_with_the_range(script, tmp_path):
    """One out-of-range value per numeric flag: exit status 2 and argparse's line naming the flag and its range."""
    rows = FLAGS[script]
    cases = [[flag, *value.split(), *SAFE_ARGS.get(script, [])] for flag, value, _ in rows]
    proc = subprocess.run([sys.executable, "-c", RUNNER, str(REPO / script), json.dumps(cases)], cwd=tmp_path,
                          env=script_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    for (flag, value, allowed), (code, stderr) in zip(rows, results):
        assert code == 2, (flag, value, code, stderr[-2000:])
        assert "Traceback" not in stderr
        last = stderr.strip().splitlines()[-1]
        assert f"error: argument {flag}" in last, (flag, last)
        assert f"allowed: {allowed}" in last or f"each in {allowed}" in last, (flag, last)
    assert list(tmp_path.iterdir()) == []  # nothing was written


def _numeric_flags(path: Path) -> tuple[set[str], bool | None]:
    """(flags whose argparse type is a number, add_extraction_args's ``audio`` if the command line gets its flags).

    add_extraction_args counts only for a parser that parses the command line (``parse_args()`` or
    ``parse_args(argv)``); the benchmarks also use it to build the stage's arguments from a fixed list.
    """
    tree = ast.parse(path.read_text())
    flags: set[str] = set()
    cli_parsers = {node.func.value.id for node in ast.walk(tree)
                   if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "parse_args"
                   and isinstance(node.func.value, ast.Name) and all(isinstance(a, ast.Name) for a in node.args)}
    extraction: bool | None = None
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
        if name == "add_argument":
            kinds = [k.value for k in node.keywords if k.arg == "type"]
            if kinds:
                t = kinds[0]
                t_name = getattr(t, "id", None) or getattr(getattr(t, "func", None), "id", None)
                if t_name in NUMERIC_TYPES:
                    # a bare int/float would accept any value: every numeric flag must carry its range
                    assert t_name not in ("int", "float"), f"{path}: {ast.unparse(node)} has no range"
                    flags.add(node.args[0].value)
        elif name == "add_extraction_args" and getattr(node.args[0], "id", None) in cli_parsers:
            audio = [k.value.value for k in node.keywords if k.arg == "audio"]
            extraction = bool(audio and audio[0])
            if all(getattr(k.value, "value", True) for k in node.keywords if k.arg == "model"):
                flags |= {f for f, _, _ in COMMON_TORCH}
        elif name in SHARED_BUILDERS:
            builder_flags, _ = _numeric_flags(SHARED_BUILDERS[name])
            flags |= builder_flags
        elif name == "add_common_args" and any(k.arg == "torch" and getattr(k.value, "value", False) is True
                                                for k in node.keywords):
            flags |= {f for f, _, _ in COMMON_TORCH}
    return flags, extraction


def test_the_table_lists_every_numeric_flag_of_every_script():
    extraction_flags = {True: {f for f, _, _ in EXTRACTION_AUDIO}, False: {f for f, _, _ in EXTRACTION_TEXT}}
    scripts = sorted(p for folder in ("alignments", "datasets", "embeddings", "experiments", "benchmarks", "tools")
                     for p in (REPO / folder).glob("*.py") if "add_argument(" in p.read_text())
    assert {str(p.relative_to(REPO)) for p in scripts} == set(FLAGS)
    for path in scripts:
        flags, extraction = _numeric_flags(path)
        if extraction is not None:
            flags |= extraction_flags[extraction]
        assert flags == {f for f, _, _ in FLAGS[str(path.relative_to(REPO))]}, path
    shared, _ = _numeric_flags(REPO / "wordreps" / "embeddings" / "extract.py")
    assert shared == extraction_flags[True] | extraction_flags[False]
