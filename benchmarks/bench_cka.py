"""Benchmark: CKA for every layer pair of two models on random data (the thesis sizes by default).

    python3 benchmarks/bench_cka.py                       # 25 x 13 pairs, dims 1024 and 768, n = 54000
    python3 benchmarks/bench_cka.py --rows 6750 13500 27000 54000 --dims 1024:768 512:384 --device cuda

Times :func:`wordreps.analysis.cka.all_pairs` (linear and debiased CKA come from the same products)
for every (rows, dims) combination and prints a table: seconds, layer pairs per second and the effective
GFLOP/s of the products (2 n p q per pair plus the self terms). ``--check`` also compares the mixed-precision
values with float64 ones on a few pairs. The data are random (the time does not depend on the values); to keep
memory low, layers are views of three random matrices per model.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from wordreps.analysis.cka import all_pairs, resolve_device
from wordreps.common.cli import int_range
from wordreps.common.errors import UserError, run_cli


def _dims(text: str) -> tuple[int, int]:
    """argparse type for a D1:D2 pair of widths, each in [1, 65536] (a width of 0 or less is refused here)."""
    try:
        a, b = text.split(":")
        a, b = int(a), int(b)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not D1:D2, e.g. 1024:768") from None
    if not (1 <= a <= 65536 and 1 <= b <= 65536):
        raise argparse.ArgumentTypeError(f"{text} is out of range (allowed: D1:D2 with each in [1, 65536])")
    return a, b


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", nargs="+", type=int_range(4, 10**7), default=[54000], help="default: 54000")
    parser.add_argument("--dims", nargs="+", type=_dims, default=[(1024, 768)], help="D1:D2 pairs, default 1024:768")
    parser.add_argument("--layers1", type=int_range(1, 1000), default=25, help="default: %(default)s")
    parser.add_argument("--layers2", type=int_range(1, 1000), default=13, help="default: %(default)s")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--precision", choices=["mixed", "float64"], default="mixed")
    parser.add_argument("--chunk_rows", type=int_range(64, 10**7), default=16384)
    parser.add_argument("--check", action="store_true", help="compare with float64 on 2 x 2 pairs at each size")
    parser.add_argument("--seed", type=int_range(0, 2**32 - 1), default=0)
    return parser


def bench_one(n: int, d1: int, d2: int, layers1: int, layers2: int, device: torch.device, precision: str,
              chunk_rows: int, check: bool, seed: int) -> dict:
    gen = torch.Generator().manual_seed(seed)
    base1 = [torch.randn(n, d1, generator=gen).numpy() for _ in range(3)]
    base2 = [torch.randn(n, d2, generator=gen).numpy() for _ in range(3)]
    # correlate the second model with the first so the values are not all ~0
    for b in base2:
        b += base1[0][:, :d2] * 0.5 if d1 >= d2 else 0.0
    src1 = [(lambda i=i: base1[i % 3]) for i in range(layers1)]
    src2 = [(lambda j=j: base2[j % 3]) for j in range(layers2)]
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    res = all_pairs(src1, src2, ["linear", "debiased"], device=device, precision=precision, chunk_rows=chunk_rows)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    flops = 2.0 * n * (layers1 * d1) * (layers2 * d2) + 2.0 * n * (layers1 * d1 * d1 + layers2 * d2 * d2)
    out = {"rows": n, "d1": d1, "d2": d2, "pairs": layers1 * layers2, "seconds": seconds,
           "pairs_per_s": layers1 * layers2 / seconds, "gflops": flops / seconds / 1e9,
           "linear_00": float(res["linear"][0, 0])}
    if check:
        ref = all_pairs(src1[:2], src2[:2], ["linear", "debiased"], device=device, precision="float64")
        out["max_abs_diff"] = max(float(np.nanmax(np.abs(res[m][:2, :2] - ref[m]))) for m in ref)
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {name}; precision {args.precision}; layers {args.layers1} x {args.layers2}")
    header = f"{'rows':>8} {'d1':>5} {'d2':>5} {'pairs':>6} {'seconds':>9} {'pairs/s':>9} {'GFLOP/s':>9}"
    if args.check:
        header += f" {'|mixed-f64|':>12}"
    print(header)
    for d1, d2 in args.dims:
        for n in args.rows:
            try:
                r = bench_one(n, d1, d2, args.layers1, args.layers2, device, args.precision, args.chunk_rows,
                              args.check, args.seed)
            except (MemoryError, torch.cuda.OutOfMemoryError) as err:
                raise UserError(f"out of memory at n = {n}, dims {d1}:{d2} ({err}); try fewer --rows") from err
            line = (f"{r['rows']:>8} {r['d1']:>5} {r['d2']:>5} {r['pairs']:>6} {r['seconds']:>9.2f} "
                    f"{r['pairs_per_s']:>9.2f} {r['gflops']:>9.1f}")
            if args.check:
                line += f" {r['max_abs_diff']:>12.1e}"
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    run_cli(main)
