"""Mutation check of the core rules: plant one-token bugs in the library, one at a time, and run the tests of
that rule against each. A mutant the tests do not fail ("survived") is a bug the suite would let through.

    .venv/bin/python tools/mutation_check.py                         # every target below (about an hour on 2 cores)
    .venv/bin/python tools/mutation_check.py --only frames pooling   # some targets
    .venv/bin/python tools/mutation_check.py --list                  # the mutants, without running anything

The repository is copied to a scratch folder (``--work``) and each mutant is written there, never into the
working tree; the tests run from the copy with the copy first on PYTHONPATH, so ``import wordreps`` and every
script the tests start use the mutated file. Results go to ``--out`` (JSON lines, one per mutant) and a table on
stdout. Not part of ``make test``: see docs/testing.md.

Mutations (one token of one line at a time, never inside strings, comments or ``raise`` statements):
comparison flips (< <=, > >=, == !=), arithmetic swaps (+ -, * /, // /, ** *), augmented assignments (+= -=),
a unary minus dropped, integer constants +1 (and 1 -> 0), float constants changed, and/or, True/False,
any/all, min/max, minimum/maximum, ceil/floor, argmax/argmin, a ``not`` dropped, break/continue.
"""
from __future__ import annotations

import argparse
import ast
import io
import json
import os
import random
import shutil
import subprocess
import sys
import time
import tokenize
from dataclasses import dataclass
from pathlib import Path

from wordreps.common.cli import int_range

REPO = Path(__file__).resolve().parents[1]
# written into the scratch copy; a --work folder that exists without it is never deleted
MARKER = ".wordreps-mutation-work"

# target -> (module, functions to mutate (qualified names; empty: the whole module), the tests naming the rule)
TARGETS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "frames": ("wordreps/alignments/frames.py", ("_half_samples", "words_frames"),
               ("tests/alignments/test_frames.py",)),
    "geometry": ("wordreps/alignments/geometry.py", ("FrameGeometry.num_frames", "FrameGeometry.frame_centre_s"),
                 ("tests/alignments/test_frames.py", "tests/alignments/test_geometry.py")),
    "pooling": ("wordreps/embeddings/pooling.py", ("word_pooling_matrix", "pool_words", "pooled_to_numpy",
                                                   "_apply_weights"),
                ("tests/embeddings/test_core_pooling.py",)),
    "cka": ("wordreps/analysis/cka.py",
            ("center_columns", "gram_rbf", "center_gram", "hsic_biased", "hsic_unbiased", "cka_from_grams",
             "linear_cka", "hsic_unbiased_linear", "debiased_linear_cka", "_center_torch", "_prepare_linear",
             "cross_products", "hsic1_from_terms", "_ratio", "_linear_family", "_rbf_centered_gram", "_rbf_family",
             "median_like_numpy"),
            ("tests/analysis/test_cka.py",)),
    "asif": ("wordreps/analysis/asif.py", (),
             ("tests/analysis/test_asif.py::test_hand_worked_case",
              "tests/analysis/test_asif.py::test_exact_rotation_retrieves_perfectly",
              "tests/analysis/test_asif.py::test_independent_spaces_sit_at_chance",
              "tests/analysis/test_asif.py::test_identical_word_vectors_against_unrelated_audio_sit_at_chance",
              "tests/analysis/test_asif.py::test_identical_word_vectors_under_an_exact_rotation_retrieve_perfectly",
              "tests/analysis/test_asif.py::test_anchor_leaves_itself_out_and_k_limit_is_anchors_minus_one",
              "tests/analysis/test_asif.py::test_chance_levels_match_random_scores_through_the_real_ranking",
              "tests/analysis/test_asif.py::test_top_k_ties_break_towards_lower_anchor_index",
              "tests/analysis/test_asif.py::test_a_tied_row_is_reordered_even_when_other_rows_are_not_tied",
              "tests/analysis/test_asif.py::test_relative_representation_clips_raises_to_p_and_normalises",
              "tests/analysis/test_asif.py::test_metrics_count_a_word_at_rank_five_and_an_unanswerable_query",
              "tests/analysis/test_asif.py::test_inputs_of_different_lengths_are_refused")),
    "keys": ("wordreps/embeddings/matrices.py", ("build_keys", "_group_rows", "keys_text"),
             ("tests/embeddings/test_matrices.py::test_keys_file_lists_shared_finite_occurrences_in_stable_order",
              "tests/embeddings/test_matrices.py::"
              "test_keys_hold_the_utterances_every_model_has_and_count_what_was_dropped",
              "tests/embeddings/test_matrices.py::test_word_lists_that_differ_between_models",
              "tests/embeddings/test_matrices.py::test_layer_matrix_equals_the_per_utterance_arrays")),
    "resume": ("wordreps/embeddings/extract.py", ("plan_batches", "select_shard_items", "prepare_run",
                                                  "run_extraction", "_run_extraction"),
               ("tests/embeddings/test_core_plan.py", "tests/embeddings/test_core_store.py",
                "tests/embeddings/test_core_bad_audio.py",
                "tests/embeddings/test_core_faults.py::"
                "test_resume_with_partly_finished_batches_redoes_only_their_missing_utterances")),
    "layers": ("wordreps/embeddings/backends/s3prl.py", ("S3prlBackend._hidden", "S3prlBackend.__init__"),
               ("tests/embeddings/test_speech_tiny.py",
                *(f"tests/embeddings/test_speech_families.py::{test}[{model}-s3prl-{sensitive}]"
                  for test in ("test_pooled_vectors_equal_mean_of_model_frames", "test_batched_equals_one_at_a_time")
                  for model, sensitive in (("tiny-s3prl-wav2vec2.pt", True),
                                           ("tiny-s3prl-wav2vec2-large.pt", False))))),
}

# Hand-planted bugs, one per core rule and beyond one token: (rule = a target above, file, text, replacement).
PLANTED: list[tuple[str, str, str, str]] = [
    ("frames", "wordreps/alignments/frames.py", "nearest = np.floor(((a + b) / 2 - r) / two_h + 0.5)",
     "nearest = np.floor(((a + b) / 2 - r) / two_h)"),                       # midpoint tie/rounding
    ("frames", "wordreps/alignments/frames.py", "last = np.ceil((b - r) / two_h).astype(np.int64) - 1",
     "last = np.floor((b - r) / two_h).astype(np.int64)"),                  # closed end instead of half-open
    ("pooling", "wordreps/embeddings/pooling.py", "np.minimum(arr[:, 1], n - 1)", "np.minimum(arr[:, 1], n)"),
    ("pooling", "wordreps/embeddings/pooling.py", "(t <= last_t.unsqueeze(-1))", "(t < last_t.unsqueeze(-1))"),
    ("cka", "wordreps/analysis/cka.py", "return X - X.mean(axis=0, keepdims=True)", "return X"),     # no centring
    ("cka", "wordreps/analysis/cka.py", "        out[s:s + chunk_rows] -= mean_low\n", "        pass\n"),
    ("cka", "wordreps/analysis/cka.py", "- 2.0 / (n - 2) * r_dot_s) / (n * (n - 3))",
     "+ 2.0 / (n - 2) * r_dot_s) / (n * (n - 3))"),                         # debiased: sign of the cross term
    ("cka", "wordreps/analysis/cka.py", "K = torch.exp(sq_dist.div_(-2.0 * sigma ** 2 * sq_median))",
     "K = torch.exp(sq_dist.div_(-2.0 * sigma * sq_median))"),             # RBF bandwidth
    ("cka", "wordreps/analysis/cka.py", "    out = {\"linear\": _ratio(cross, np.outer(self1, self2))}",
     "    out = {\"linear\": _ratio(cross, np.outer(self1, self1))}"),       # linear: wrong normaliser
    ("asif", "wordreps/analysis/asif.py", 'sims[rows, ex[rows]] = float("-inf")', "pass"),  # anchor exclusion
    ("keys", "wordreps/embeddings/matrices.py", "utt_ids = sorted(common)", "utt_ids = list(common)"),
    ("keys", "wordreps/embeddings/matrices.py", "rows.extend((utt, pos, words[pos]) for pos in np.flatnonzero(finite)",
     "rows.extend((utt, pos, words[pos]) for pos in np.flatnonzero(finite)[::-1]"),
    ("resume", "wordreps/embeddings/extract.py", "todo = [b for b in mine if any(u.utt_id not in finished",
     "todo = [b for b in mine if all(u.utt_id not in finished"),          # skips partly finished batches
    ("resume", "wordreps/embeddings/extract.py", "if u.utt_id in plan.finished:", "if False:"),   # rewrites
    ("layers", "wordreps/embeddings/backends/s3prl.py", "return list(states), [min(f, max_t)",
     "return list(states[1:]) + [states[-1]], [min(f, max_t)"),          # layer 0 dropped, count kept
]

SWAPS_OP = {"<": "<=", "<=": "<", ">": ">=", ">=": ">", "==": "!=", "!=": "==", "+": "-", "-": "+", "*": "/",
            "/": "*", "//": "/", "**": "*", "+=": "-=", "-=": "+=", "*=": "/="}
SWAPS_NAME = {"and": "or", "or": "and", "True": "False", "False": "True", "any": "all", "all": "any", "min": "max",
              "max": "min", "minimum": "maximum", "maximum": "minimum", "ceil": "floor", "floor": "ceil",
              "argmax": "argmin", "argmin": "argmax", "break": "continue", "continue": "break"}
_UNARY_BEFORE = {"(", "[", "{", ",", "=", ":", "return", "+", "-", "*", "/", "//", "**", "<", ">", "<=", ">=", "==",
                 "!=", "and", "or", "not", "in", "if", "else", "+=", "-=", "*=", "/="}


@dataclass
class Mutant:
    target: str
    path: str
    line: int          # 1-based
    col: int
    old: str
    new: str
    function: str
    source_line: str

    def apply(self, text: str) -> str:
        if "\n" in self.old or len(self.old) > 12:  # a planted bug: replace its text
            assert text.count(self.old) == 1, self
            return text.replace(self.old, self.new)
        lines = text.splitlines(keepends=True)
        line = lines[self.line - 1]
        assert line[self.col:self.col + len(self.old)] == self.old, (self, line)
        lines[self.line - 1] = line[:self.col] + self.new + line[self.col + len(self.old):]
        return "".join(lines)

    def describe(self) -> str:
        return f"{self.path}:{self.line}:{self.col} {self.function}: {self.old!r} -> {self.new!r}"


def _function_lines(tree: ast.Module, wanted: tuple[str, ...]) -> dict[int, str]:
    """line -> qualified function name, for the body lines of ``wanted`` (all functions when empty), without
    docstrings and ``raise`` statements."""
    out: dict[int, str] = {}

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                if not wanted or name in wanted:
                    skip: set[int] = set()
                    body = child.body
                    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None),
                                                                              ast.Constant):
                        skip |= set(range(body[0].lineno, body[0].end_lineno + 1))
                    for sub in ast.walk(child):
                        if isinstance(sub, ast.Raise):
                            skip |= set(range(sub.lineno, sub.end_lineno + 1))
                    for line in range(body[0].lineno, child.end_lineno + 1):
                        if line not in skip:
                            out.setdefault(line, name)
                visit(child, f"{name}.")
    visit(tree, "")
    return out


def _number_mutations(text: str) -> list[str]:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return []
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return []
    if isinstance(value, int):
        return ["0", "2"] if value == 1 else [str(value + 1)]
    return ["1.0"] if value == 0 else [repr(value + 1.0)]


def mutants_of(target: str) -> list[Mutant]:
    path, functions, _ = TARGETS[target]
    text = (REPO / path).read_text()
    lines = _function_lines(ast.parse(text), functions)
    out: list[Mutant] = []
    src_lines = text.splitlines()
    prev = None
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        row, col = tok.start
        if row in lines and tok.type in (tokenize.OP, tokenize.NAME, tokenize.NUMBER):
            news: list[str] = []
            if tok.type == tokenize.OP and tok.string in SWAPS_OP:
                unary = tok.string == "-" and (prev is None or prev.string in _UNARY_BEFORE or prev.start[0] != row)
                news = [""] if unary else [SWAPS_OP[tok.string]]
            elif tok.type == tokenize.NAME and tok.string in SWAPS_NAME:
                news = [SWAPS_NAME[tok.string]]
            elif tok.type == tokenize.NAME and tok.string == "not":
                news = [""]
            elif tok.type == tokenize.NUMBER:
                news = _number_mutations(tok.string)
            for new in news:
                old = tok.string + (" " if new == "" and tok.string == "not" else "")
                out.append(Mutant(target, path, row, col, old, new, lines[row], src_lines[row - 1].strip()))
        if tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT):
            prev = tok
    return out


def planted_mutants(targets: list[str]) -> list[Mutant]:
    out = []
    for rule, path, text, new in PLANTED:
        if rule not in targets:
            continue
        source = (REPO / path).read_text()
        assert source.count(text) == 1, (path, text)
        offset = source.index(text)
        line = source.count("\n", 0, offset) + 1
        col = offset - (source.rfind("\n", 0, offset) + 1)
        lines = _function_lines(ast.parse(source), ())
        out.append(Mutant(rule, path, line, col, text, new, "planted " + lines.get(line, "?"),
                          source.splitlines()[line - 1].strip()))
    return out


def _line_key(description: str) -> tuple[str, str]:
    """(path:line, "'old' -> 'new'") of a mutant's description (the column left out: a survivor of any column
    of that line is tried again)."""
    where, change = description.split(" ", 1)[0], description.split(": ", 1)[1]
    path, line = where.split(":")[:2]
    return f"{path}:{line}", change


def check_work(work: Path) -> str | None:
    """Why ``work`` may not be the scratch folder (it is deleted and rewritten), or None when it may: it must lie
    outside the repository and either not exist or hold the marker file this tool writes."""
    folder, repo = work.expanduser().resolve(), REPO.resolve()
    if folder == repo or repo in folder.parents:
        return f"--work {work} is the repository or a folder inside it; pass a scratch folder outside {repo}"
    if folder.exists() and not (folder / MARKER).is_file():  # a file, a user's folder, an ancestor of the repo
        return (f"--work {work} exists and was not made by this tool (no {MARKER} in it), so it will not be "
                "deleted; pass a new folder, or delete it yourself")
    return None


def _copy_repo(work: Path) -> None:
    if work.exists():
        shutil.rmtree(work)
    ignore = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", "outputs", ".pytest_cache")
    shutil.copytree(REPO, work, ignore=ignore)
    (work / MARKER).write_text("scratch copy made by tools/mutation_check.py; deleted and rewritten by each run\n")


def _pytest(work: Path, tests: tuple[str, ...], timeout_s: float) -> tuple[str, float, str]:
    paths = [str(work), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header", "-p", "no:xdist",
           *tests]
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - start, ""
    seconds = time.monotonic() - start
    failed = [line for line in proc.stdout.splitlines() if line.startswith("FAILED") or line.startswith("ERROR")]
    status = "passed" if proc.returncode == 0 else "failed" if proc.returncode == 1 else f"rc{proc.returncode}"
    return status, seconds, failed[0] if failed else proc.stdout.strip().splitlines()[-1:][0] if proc.stdout else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(TARGETS), help="targets to run (default: all)")
    parser.add_argument("--sample", type=int_range(1, 100000), default=None,
                        help="at most this many mutants per target, a seeded sample (default: every mutant)")
    parser.add_argument("--survivors_of", default=None,
                        help="run only the mutants that survived in this earlier --out file (after adding tests)")
    parser.add_argument("--planted", action="store_true",
                        help="run the hand-planted bugs of PLANTED (one or two per rule) instead of token mutants")
    parser.add_argument("--tests", nargs="+", default=None,
                        help="run these tests against every mutant instead of the targets' own (e.g. a whole area, to "
                             "see whether a survivor of its rule's tests is caught elsewhere)")
    parser.add_argument("--list", action="store_true", help="print the mutants and exit")
    parser.add_argument("--work", default="/tmp/wordreps-mutation",
                        help="scratch copy of the repository, deleted and rewritten by each run: a new folder outside "
                             f"the repository, or one this tool made (it holds {MARKER})")
    parser.add_argument("--out", default="outputs/mutation/results.jsonl", help="one JSON line per mutant")
    args = parser.parse_args(argv)
    targets = args.only or list(TARGETS)
    mutants = []
    for t in targets:
        mine = mutants_of(t)
        if args.sample is not None and len(mine) > args.sample:
            mine = sorted(random.Random(0).sample(mine, args.sample), key=lambda m: (m.line, m.col, m.new))
        mutants += mine
    if args.planted:
        mutants = planted_mutants(targets)
    if args.survivors_of:
        survived = {_line_key(r["mutant"]) for r in map(json.loads, Path(args.survivors_of).read_text().splitlines())
                    if r["verdict"] == "survived"}
        mutants = [m for t in targets for m in mutants_of(t) if _line_key(m.describe()) in survived]
    if args.list:
        for m in mutants:
            print(m.describe(), "|", m.source_line)
        print(f"{len(mutants)} mutants")
        return 0
    work = Path(args.work)
    refused = check_work(work)
    if refused:
        print(f"error: {refused}", file=sys.stderr)
        return 2
    _copy_repo(work)
    probe = subprocess.run([sys.executable, "-c", "import wordreps; print(wordreps.__file__)"], cwd=work,
                           env={**os.environ, "PYTHONPATH": str(work)}, capture_output=True, text=True)
    if not probe.stdout.strip().startswith(str(work)):
        print(f"error: the copy's wordreps is not the one imported ({probe.stdout.strip()}{probe.stderr[-300:]})",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tests_of = {t: tuple(args.tests) if args.tests else TARGETS[t][2] for t in targets}
    baselines: dict[str, float] = {}
    for t in targets:
        status, seconds, detail = _pytest(work, tests_of[t], 1800)
        if status != "passed":
            print(f"error: the tests of {t} fail without any mutant ({detail}); fix them first", file=sys.stderr)
            return 2
        baselines[t] = seconds
        print(f"[baseline] {t}: {seconds:.0f} s", flush=True)
    counts: dict[str, dict[str, int]] = {t: {} for t in targets}
    with out.open("w") as fh:
        for i, m in enumerate(mutants, 1):
            target_file = work / m.path
            original = target_file.read_text()
            target_file.write_text(m.apply(original))
            try:
                status, seconds, detail = _pytest(work, tests_of[m.target], max(60.0, 4 * baselines[m.target]))
            finally:
                target_file.write_text(original)
            verdict = "survived" if status == "passed" else "killed"
            counts[m.target][verdict] = counts[m.target].get(verdict, 0) + 1
            fh.write(json.dumps({"target": m.target, "mutant": m.describe(), "line": m.source_line,
                                 "verdict": verdict, "status": status, "seconds": round(seconds, 1),
                                 "killed_by": detail if verdict == "killed" else None}) + "\n")
            fh.flush()
            print(f"[{i}/{len(mutants)}] {verdict:8s} {m.describe()}  | {m.source_line}", flush=True)
    print("\ntarget      tried  killed  survived")
    for t in targets:
        c = counts[t]
        print(f"{t:10s} {sum(c.values()):6d} {c.get('killed', 0):7d} {c.get('survived', 0):9d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
