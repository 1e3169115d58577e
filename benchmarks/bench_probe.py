"""Benchmark: the linear probe's classifier, torch L-BFGS against scikit-learn, on synthetic word-like data.

    python3 benchmarks/bench_probe.py                                  # 10000 rows, 1024 dims, 500 classes
    python3 benchmarks/bench_probe.py --rows 10000 40000 --implementations torch --device cuda

One layer's fit per (rows, implementation): rows drawn from K classes with Zipf frequencies (as words are),
each class a random mean plus noise, split 80/20; prints the fit's seconds, iterations and test accuracy, and
the time 25 layers would take (25 x the fit: each layer is one independent fit of the same size).
"""
from __future__ import annotations

import argparse
import os

import numpy as np

from wordreps.common.cli import float_range, int_range
from wordreps.common.devices import DEVICE_HELP, device_arg
from wordreps.common.errors import run_cli
from wordreps.analysis import probe


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", nargs="+", type=int_range(100, 10**7), default=[10000], help="default: 10000")
    parser.add_argument("--dim", type=int_range(1, 65536), default=1024, help="default: %(default)s")
    parser.add_argument("--classes", type=int_range(2, 100000), default=500, help="default: %(default)s")
    parser.add_argument("--implementations", nargs="+", choices=sorted(probe.IMPLEMENTATIONS),
                        default=sorted(probe.IMPLEMENTATIONS))
    parser.add_argument("--max_iter", type=int_range(1, 100000), default=probe.MAX_ITER)
    parser.add_argument("--l2", type=float_range(0, None), default=probe.L2)
    parser.add_argument("--noise", type=float_range(0, None), default=3.0, help="noise scale against unit class means")
    parser.add_argument("--device", type=device_arg, default="auto", help=DEVICE_HELP)
    parser.add_argument("--seed", type=int_range(0, 2**32 - 1), default=0)
    return parser


def synthetic(n: int, d: int, k: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    freq = 1.0 / np.arange(1, k + 1)
    y = rng.choice(k, size=n, p=freq / freq.sum())
    means = rng.normal(size=(k, d)).astype(np.float32)
    X = means[y] + noise * rng.normal(size=(n, d)).astype(np.float32)
    return X, y


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from wordreps.common.devices import resolve_device
    import torch

    device = resolve_device(args.device)
    print(f"device {device} ({torch.get_num_threads()} threads); dim {args.dim}; {args.classes} classes; "
          f"max_iter {args.max_iter}; l2 {args.l2}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'rows':>8} {'implementation':<15} {'fit s':>8} {'iters':>6} {'test acc':>9} {'25 layers':>10}")
    for n in args.rows:
        X, y = synthetic(n, args.dim, args.classes, args.noise, args.seed)
        test = np.arange(n) % 5 == 0
        for name in args.implementations:
            fit = probe.IMPLEMENTATIONS[name](X[~test], y[~test], args.classes, l2=args.l2, max_iter=args.max_iter,
                                              device=device if name == "torch" else "cpu")
            acc = probe.accuracy(y[test], fit.predict(X[test]))
            minutes = 25 * fit.seconds / 60
            print(f"{n:>8} {name:<15} {fit.seconds:>8.1f} {fit.iterations:>6} {acc:>9.3f} {minutes:>8.1f} m",
                  flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    run_cli(main)
