"""Benchmark: every layer-comparison measure for every layer pair of two models, beside linear CKA, on random data.

    python3 benchmarks/bench_measures.py                      # 25 x 13 pairs, dims 1024 and 768, n = 54000
    python3 benchmarks/bench_measures.py --rows 13500 --measures linear cca procrustes --check

Times, for each (rows, dims), one all-pairs call per engine: linear CKA
(:func:`wordreps.analysis.cka.all_pairs`; debiased CKA comes from the same products), the CCA family
(:mod:`wordreps.analysis.cca`: cca, svcca and pwcca together, or the ones named), Procrustes
(:mod:`wordreps.analysis.procrustes`) and sampled RSA (:mod:`wordreps.analysis.rsa`),
and prints seconds and the ratio to linear CKA. ``--check`` compares the first 2 x 2 pairs of each with the
float64 reference forms (at most 6000 rows of them, the references being O(n p^2) numpy). The data are random
(the time does not depend on the values); to keep memory low, layers are views of three random matrices per
model, as in benchmarks/bench_cka.py.
"""
from __future__ import annotations

import argparse
import os
import runpy
import sys
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from wordreps.analysis import cca, cka, procrustes, rsa
from wordreps.analysis.pairs import SampleSizeWarning
from wordreps.common.cli import int_range
from wordreps.common.devices import DEVICE_HELP, device_arg, is_out_of_memory, resolve_device
from wordreps.common.errors import UserError, run_cli

if str(Path(__file__).resolve().parent) not in sys.path:  # the shared helpers beside this script
    sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench  # noqa: E402

# the D1:D2 argparse type, shared with bench_cka.py (benchmarks/ is a folder of scripts, not a package)
_dims = runpy.run_path(str(Path(__file__).with_name("bench_cka.py")))["_dims"]

MEASURES = ("linear", "cca", "svcca", "pwcca", "procrustes", "rsa")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", nargs="+", type=int_range(4, 10**7), default=[54000], help="default: 54000")
    parser.add_argument("--dims", nargs="+", type=_dims, default=[(1024, 768)], help="D1:D2 pairs, default 1024:768")
    parser.add_argument("--layers1", type=int_range(1, 1000), default=25, help="default: %(default)s")
    parser.add_argument("--layers2", type=int_range(1, 1000), default=13, help="default: %(default)s")
    parser.add_argument("--measures", nargs="+", choices=MEASURES, default=list(MEASURES),
                        help="default: all; cca, svcca and pwcca named together are timed as one call")
    parser.add_argument("--rsa_sample", type=int_range(3, 100000), default=rsa.RSA_SAMPLE,
                        help="rows sampled for RSA (default: %(default)s)")
    parser.add_argument("--device", type=device_arg, default="auto", help=DEVICE_HELP)
    parser.add_argument("--precision", choices=["mixed", "float64"], default="mixed")
    parser.add_argument("--chunk_rows", type=int_range(64, 10**7), default=16384)
    parser.add_argument("--check", action="store_true", help="compare 2 x 2 pairs with the float64 reference forms")
    parser.add_argument("--seed", type=int_range(0, 2**32 - 1), default=0)
    return parser


def _engines(measures: list[str], rsa_sample: int) -> list[tuple[str, callable, list[str], dict]]:
    """(label, engine, names, options) per timed call, linear CKA first."""
    calls = []
    if "linear" in measures:
        calls.append(("linear CKA", cka.all_pairs, ["linear"], {}))
    family = [m for m in cca.NAMES if m in measures]
    if family:
        calls.append(("/".join(family), cca.all_pairs, family, {}))
    if "procrustes" in measures:
        calls.append(("procrustes", procrustes.all_pairs, ["procrustes"], {}))
    if "rsa" in measures:
        calls.append((f"rsa (s = {rsa_sample})", rsa.all_pairs, ["rsa"], {"rsa_sample": rsa_sample}))
    return calls


def _reference(name: str, X: np.ndarray, Y: np.ndarray, rsa_sample: int) -> float:
    if name == "linear":
        return cka.linear_cka(X, Y)
    if name in cca.NAMES:
        return getattr(cca, name)(X, Y)
    if name == "procrustes":
        return procrustes.procrustes(X, Y)
    return rsa.rsa(X, Y, sample=rsa_sample)


def bench_one(n: int, d1: int, d2: int, args, device: torch.device) -> Iterator[dict]:
    """One timed all-pairs call per engine, yielded as each finishes."""
    base1, base2 = _bench.correlated_layers(n, d1, d2, args.seed)
    src1 = [(lambda i=i: base1[i % 3]) for i in range(args.layers1)]
    src2 = [(lambda j=j: base2[j % 3]) for j in range(args.layers2)]
    for label, engine, names, options in _engines(args.measures, args.rsa_sample):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SampleSizeWarning)
            t = _bench.timed(lambda: engine(src1, src2, names, device=device, precision=args.precision,
                                            chunk_rows=args.chunk_rows, **options), device)
        res = t.result
        row = {"label": label, "rows": n, "d1": d1, "d2": d2, "pairs": args.layers1 * args.layers2,
               "seconds": t.wall, "cpu_seconds": t.cpu, "warnings": len(caught)}
        if args.check:
            row["max_abs_diff"] = _check(engine, names, options, res, base1, base2, n, args, device)
        yield row


def _check(engine, names, options, res, base1, base2, n: int, args, device) -> float:
    """Largest |engine - reference| over the first 2 x 2 pairs (on their first 6000 rows if n is larger)."""
    m = min(n, 6000)
    diffs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SampleSizeWarning)  # the references warn as the engine did
        for name in names:
            for a in range(min(2, args.layers1)):
                for b in range(min(2, args.layers2)):
                    X, Y = base1[a % 3][:m], base2[b % 3][:m]
                    sub = engine([lambda X=X: X], [lambda Y=Y: Y], [name], device=device, precision=args.precision,
                                 **options)[name][0, 0]
                    ref = _reference(name, X, Y, args.rsa_sample)
                    diffs.append(abs(sub - ref))
                    if m == n:
                        diffs.append(abs(res[name][a, b] - ref))
    return max(diffs)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"device: {name}; precision {args.precision}; layers {args.layers1} x {args.layers2}; load average {load}")
    header = (f"{'measure':<20} {'rows':>7} {'d1':>5} {'d2':>5} {'pairs':>6} {'seconds':>9} {'x CKA':>7} "
              f"{'CPU s':>8} {'x CKA':>7} {'load':>5}")
    if args.check:
        header += f" {'|engine-ref|':>13}"
    print(header)
    for d1, d2 in args.dims:
        for n in args.rows:
            cka = None
            try:
                for r in bench_one(n, d1, d2, args, device):
                    cka = r if r["label"] == "linear CKA" else cka
                    _print_row(r, cka, args.check)
            except (RuntimeError, MemoryError) as err:  # torch's CPU and CUDA out-of-memory are RuntimeErrors
                if not is_out_of_memory(err):
                    raise
                raise UserError(f"out of memory at n = {n}, dims {d1}:{d2} ({' '.join(str(err).split())[:120]}); "
                                "try fewer --rows") from err
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


def _print_row(r: dict, cka: dict | None, check: bool) -> None:
    """One table row; the CPU seconds (all threads) are the steadier figure when other processes share the cores."""
    ratio = f"{r['seconds'] / cka['seconds']:>7.2f}" if cka else f"{'':>7}"
    cpu_ratio = f"{r['cpu_seconds'] / cka['cpu_seconds']:>7.2f}" if cka else f"{'':>7}"
    line = (f"{r['label']:<20} {r['rows']:>7} {r['d1']:>5} {r['d2']:>5} {r['pairs']:>6} {r['seconds']:>9.2f} "
            f"{ratio} {r['cpu_seconds']:>8.1f} {cpu_ratio} {os.getloadavg()[0]:>5.1f}")
    if check:
        line += f" {r['max_abs_diff']:>13.1e}"
    if r["warnings"]:
        line += "  (sample-size warning)"
    print(line, flush=True)


if __name__ == "__main__":
    run_cli(main)
