"""Seconds per utterance of an easyaudio EnCodecMAE with torch.compile off (the default) and on (--torch_compile).

    python3 benchmarks/bench_easyaudio.py --model encodecmae_base --device cpu

Needs the real easyaudio (docs/real-parts.md). The pinned encodecmae decorates its encoder with torch.compile and
switches it with the encoder's ``compile`` flag, so one loaded model runs both ways: each utterance (fresh
random audio of the given length) is run eager and compiled, one right after the other, so that a busy machine
slows both alike. The first two lengths are the compiled path's warm-up (a first compile, then a recompile with
dynamic shapes); the totals are given with and without them. Which mode goes first alternates from one
length to the next.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from wordreps.common.cli import float_range
from wordreps.common.errors import run_cli
from wordreps.embeddings.backends.easyaudio import EasyAudioBackend

DEFAULT_SECONDS = [2.1, 3.4, 4.7, 5.9, 8.3, 3.4, 12.2, 6.6, 15.0, 2.8]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="encodecmae_base")
    parser.add_argument("--seconds", type=float_range(0.5, 60.0), nargs="+", default=DEFAULT_SECONDS,
                        help="utterance lengths in seconds, in this order (default: %(default)s)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    backend = EasyAudioBackend(args.model, args.device)
    encoder = backend.model.model.visible_encoder
    rng = np.random.default_rng(0)
    took = {"off": [], "on": []}
    for i, seconds in enumerate(args.seconds):
        audio = (0.1 * rng.standard_normal(int(seconds * backend.sample_rate_hz))).astype(np.float32)
        hidden = {}
        for mode in ("off", "on") if i % 2 == 0 else ("on", "off"):  # alternate which goes first
            encoder.compile = mode == "on"
            start = time.perf_counter()
            hidden[mode] = backend._hidden(audio, where=f"{seconds:g} s of noise")
            took[mode].append(time.perf_counter() - start)
        diff = float((hidden["on"] - hidden["off"]).abs().max() / hidden["off"].abs().max())
        print(f"{seconds:5.1f} s of audio: compile off {took['off'][-1]:7.2f} s, on {took['on'][-1]:7.2f} s "
              f"(largest difference {diff:.1e} of the largest value)", flush=True)
    audio_s = sum(args.seconds)
    for mode, times in took.items():
        print(f"compile {mode}: {sum(times):.1f} s for {audio_s:.1f} s of audio; without the first two "
              f"lengths {sum(times[2:]):.1f} s for {sum(args.seconds[2:]):.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    run_cli(main)
