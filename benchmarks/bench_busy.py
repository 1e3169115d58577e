"""Benchmark: the speech stage on a busy machine, beside a one-utterance-at-a-time loop, quiet and loaded.

    python3 benchmarks/bench_busy.py                        # demo corpus x 16, tiny s3prl wav2vec2, 2 busy processes
    python3 benchmarks/bench_busy.py --busy 4 --trials 3    # a heavier load, best of 3
    sudo python3 benchmarks/bench_busy.py --nice -19        # on a shared machine: near-quiet "quiet" runs

On a shared machine other jobs take the cores. Torch's intra-op threads wait for each other at the end of every
parallel region; when one of them is descheduled the others spin, so CPU time grows far beyond the work. This
runs, each in a fresh process (model loaded before the clock starts), with and without ``--busy`` processes
spinning on the CPUs (plain ``while True`` loops, one per process):

- toolkit: :func:`wordreps.embeddings.extract.run_extraction` exactly as ``embeddings/speech_embedding.py``
  runs it (length-sorted batches, audio prefetch and .npy writer threads sized from the usable CPUs), with torch
  at the default thread count (the CPUs the process may use) and OpenMP's passive wait (the toolkit's default,
  wordreps/common/threads.py); the same with OpenMP's own default wait (a short spin, as before); and with
  ``--num_threads 1``;
- loop: one utterance at a time through the same s3prl upstream, every layer copied to the host, word means in
  numpy, one JSON per utterance (the thesis's way: benchmarks/_thesis.py, shared with the other benchmarks'
  thesis loops), at torch's defaults (threads and wait) and at 1 thread.

``--nice N`` runs the measured processes and the busy ones at niceness N: with a negative N (root only) they
take the CPUs from everything else on a shared machine, so "quiet" is close to a quiet machine and "loaded" is
the measured process against the busy ones alone.

It reports wall time and CPU time (``time.process_time``: all threads of the process) of each. Results:
``<out_dir>/bench_busy.json`` and ``bench_busy.md`` (default ``outputs/bench``). Numbers measured while
other, unrelated jobs also run are provisional: the Markdown names the load average before and after.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wordreps.common.atomic import write_json_atomic, write_text_atomic
from wordreps.common.cli import int_range
from wordreps.common.errors import run_cli

if str(Path(__file__).resolve().parent) not in sys.path:  # the shared helpers beside this script
    sys.path.insert(0, str(Path(__file__).resolve().parent))
import _thesis  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SIDES = ("toolkit", "loop")


def _sibling(script: str) -> dict:
    import runpy

    return runpy.run_path(str(Path(__file__).with_name(script)))


def prepare_inputs(work: Path, repeat: int) -> tuple[Path, Path]:
    """(tiny s3prl checkpoint, alignment JSON of the demo corpus repeated ``repeat`` times)."""
    from wordreps.embeddings.tiny.speech import build_s3prl

    pipeline = _sibling("bench_pipeline.py")
    ckpt = work / "models" / "tiny-s3prl-wav2vec2-large.pt"
    if not ckpt.is_file():
        build_s3prl(work / "models", ckpt.name)
    base = pipeline["base_alignment"](work, pipeline["DEMO_AUDIO"], pipeline["DEMO_TEXTGRIDS"])
    return ckpt, pipeline["repeat_corpus"](base, repeat, work / f"corpus-x{repeat}")


# ---------------------------------------------------------------------------------------------- one measurement

def child(side: str, ckpt: Path, alignment: Path, threads: int | None, wait: str, out_dir: Path) -> dict:
    """Run one side in this (fresh) process; the model is loaded before the clock starts. ``wait``: OpenMP's
    wait policy, "toolkit" (the toolkit's choice) or "openmp" (unset: OpenMP's default)."""
    if wait == "openmp":
        os.environ.pop("OMP_WAIT_POLICY", None)
        importlib.import_module("torch")  # loads OpenMP before set_torch_threads could choose its wait policy
    from wordreps.common.threads import set_torch_threads

    count = set_torch_threads(threads)
    import torch

    from wordreps.alignments.format import load_alignment
    from wordreps.embeddings.families import load_backend

    # float32 on both sides: this measures threads under load, not precision (the loop runs the upstream as it is)
    backend = load_backend("speech", "", torch.device("cpu"), s3prl_ckpt=str(ckpt), family_name="s3prl",
                           precision="float32")
    utterances = load_alignment(alignment).utterances
    model = {"num_layers": backend.num_layers, "dim": backend.dim}  # what the backend reports, for the label
    wall, cpu = time.perf_counter(), time.process_time()
    if side == "toolkit":
        from wordreps.embeddings.extract import add_extraction_args, run_extraction

        stage = argparse.ArgumentParser()  # the flags embeddings/speech_embedding.py parses
        add_extraction_args(stage, audio=True)
        run_extraction(backend, stage.parse_args(["--path", str(alignment), "--out_dir", str(out_dir), "--device",
                                                  "cpu", "--precision", "float32", "--no_progress"]))
    else:
        from wordreps.common.audio import load_audio

        out_dir.mkdir(parents=True, exist_ok=True)
        for u in utterances:  # the thesis's per-utterance work, shared with the other benchmarks' thesis loops
            wav = torch.from_numpy(load_audio(u.audio_path, 16000))
            _thesis.utterance(lambda: backend.upstream([wav])["hidden_states"], u.utt_id, [w.word for w in u.words],
                              _thesis.frame_spans(u), out_dir)
    return {"side": side, "threads": count, "wait": os.environ.get("OMP_WAIT_POLICY", "unset (OpenMP default)"),
            "wall_s": time.perf_counter() - wall,
            "cpu_s": time.process_time() - cpu, "utterances": len(utterances),
            "audio_s": sum(u.duration_s for u in utterances), **model}


def _niceness(value: int):
    return (lambda: os.nice(value)) if value else None


def measure(side: str, threads: int | None, wait: str, ckpt: Path, alignment: Path, work: Path,
            nice: int = 0) -> dict:
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        cmd = [sys.executable, __file__, "--child", side, "--ckpt", str(ckpt), "--alignment", str(alignment),
               "--child_out", tmp, "--child_wait", wait] + (["--child_threads", str(threads)] if threads else [])
        env = {k: v for k, v in os.environ.items()
               if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY")}
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, preexec_fn=_niceness(nice))
    if proc.returncode != 0:
        raise RuntimeError(f"{side} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


class Load:
    """``count`` processes spinning on the CPU for the ``with`` block."""

    def __init__(self, count: int, nice: int = 0):
        self.count = count
        self.nice = nice
        self.procs: list[subprocess.Popen] = []

    def __enter__(self) -> "Load":
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=_niceness(self.nice))
                      for _ in range(self.count)]
        time.sleep(1.0)
        return self

    def __exit__(self, *exc) -> None:
        for p in self.procs:
            p.kill()
            p.wait()


def markdown(res: dict) -> str:
    lines = [f"Speech stage, tiny s3prl wav2vec2 ({res['num_layers']} layers x {res['dim']}), demo corpus x "
             f"{res['repeat']} "
             f"({res['utterances']} utterances, {res['audio_s']:.0f} s of audio); loaded = {res['busy']} busy "
             f"processes on {res['cpus']} usable CPUs; best of {res['trials']}; niceness {res['nice']}. "
             f"Load average before/after: "
             f"{res['load_before']:.1f} / {res['load_after']:.1f}.", "",
             "| side | torch threads | OpenMP wait | quiet wall | quiet CPU | loaded wall | loaded CPU |",
             "|---|---:|---|---:|---:|---:|---:|"]
    for row in res["rows"]:
        q, l = row["quiet"], row["loaded"]
        lines.append(f"| {row['side']} | {row['threads']} | {q['wait']} | {q['wall_s']:.2f} s | {q['cpu_s']:.2f} s | "
                     f"{l['wall_s']:.2f} s | {l['cpu_s']:.2f} s |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--repeat", type=int_range(1, 10000), default=16, help="demo corpus copies (default: 16)")
    parser.add_argument("--busy", type=int_range(1, 1024), default=2,
                        help="spinning processes for the loaded runs (default: 2)")
    parser.add_argument("--trials", type=int_range(1, 100), default=1, help="runs of each, best kept (default: 1)")
    parser.add_argument("--nice", type=int_range(-20, 19), default=0,
                        help="niceness of the measured and the busy processes (negative: root only; default: 0)")
    parser.add_argument("--out_dir", type=Path, default=REPO / "outputs" / "bench", help="default: outputs/bench")
    parser.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--ckpt", help=argparse.SUPPRESS)
    parser.add_argument("--alignment", help=argparse.SUPPRESS)
    parser.add_argument("--child_out", help=argparse.SUPPRESS)
    parser.add_argument("--child_threads", type=int_range(1, 1024), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child_wait", choices=("toolkit", "openmp"), default="toolkit", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, Path(args.ckpt), Path(args.alignment), args.child_threads,
                               args.child_wait, Path(args.child_out) / "out")))
        return 0
    from wordreps.common.threads import available_cpus

    work = args.out_dir / "busy-work"
    work.mkdir(parents=True, exist_ok=True)
    ckpt, alignment = prepare_inputs(work, args.repeat)
    configs = [("toolkit", None, "toolkit"), ("toolkit", None, "openmp"), ("toolkit", 1, "toolkit"),
               ("loop", None, "openmp"), ("loop", 1, "openmp")]
    load_before = os.getloadavg()[0]
    rows = []
    for side, threads, wait in configs:
        row: dict = {"side": side}
        for condition in ("quiet", "loaded"):
            runs = []
            for _ in range(args.trials):
                if condition == "loaded":
                    with Load(args.busy, args.nice):
                        runs.append(measure(side, threads, wait, ckpt, alignment, work, args.nice))
                else:
                    runs.append(measure(side, threads, wait, ckpt, alignment, work, args.nice))
            row[condition] = min(runs, key=lambda r: r["wall_s"])
            row["threads"] = row[condition]["threads"]
            print(f"{side:8s} threads {row['threads']} wait {wait:7s} {condition:6s}: wall {row[condition]['wall_s']:.2f} s, "
                  f"CPU {row[condition]['cpu_s']:.2f} s", file=sys.stderr, flush=True)
        rows.append(row)
    res = {"repeat": args.repeat, "busy": args.busy, "trials": args.trials, "nice": args.nice, "cpus": available_cpus(),
           "num_layers": rows[0]["quiet"]["num_layers"], "dim": rows[0]["quiet"]["dim"],
           "utterances": rows[0]["quiet"]["utterances"], "audio_s": rows[0]["quiet"]["audio_s"],
           "load_before": load_before, "load_after": os.getloadavg()[0], "rows": rows}
    write_json_atomic(args.out_dir / "bench_busy.json", res)
    text = markdown(res)
    write_text_atomic(args.out_dir / "bench_busy.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    run_cli(main)
