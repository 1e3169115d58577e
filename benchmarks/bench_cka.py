"""Benchmark: CKA for every layer pair of two models on random data (the thesis sizes by default).

    python3 benchmarks/bench_cka.py                       # 25 x 13 pairs, dims 1024 and 768, n = 54000
    python3 benchmarks/bench_cka.py --rows 6750 13500 27000 54000 --dims 1024:768 512:384 --device cuda

Times :func:`wordreps.analysis.cka.all_pairs` (linear and debiased CKA come from the same products)
for every (rows, dims) combination and prints a table with three timings:

- ``compute``: all pairs with every layer already on the device (the products, centring and reductions);
- ``copy``: moving the layers from host memory to the device as the CKA script does (pageable memory, one
  copy per layer of the streamed model and per layer of the resident one); 0 on a CPU;
- ``end to end``: all pairs from host arrays, as ``experiments/experiment_CKA.py`` runs it (copies included).

GFLOP/s is computed from ``compute`` alone (2 n p q per pair plus the self terms), so a slow copy does not
hide the arithmetic rate. Before the first size, one small all-pairs run at the first dims warms the device
up (cuBLAS handles, lazy kernel loading), so the first size does not pay for it. ``--check`` also compares
the mixed-precision values with float64 ones on a few pairs. The data are random (the time does not depend on
the values); to keep memory low, layers are views of three random matrices per model.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from wordreps.common.cli import int_range
from wordreps.common.devices import DEVICE_HELP, device_arg, describe_device, is_out_of_memory, resolve_device
from wordreps.common.errors import UserError, run_cli
from wordreps.common.precision import exact_float32
from wordreps.analysis.cka import all_pairs

if str(Path(__file__).resolve().parent) not in sys.path:  # the shared helpers beside this script
    sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench  # noqa: E402


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
    parser.add_argument("--device", type=device_arg, default="auto", help=DEVICE_HELP)
    parser.add_argument("--precision", choices=["mixed", "float64"], default="mixed")
    parser.add_argument("--chunk_rows", type=int_range(64, 10**7), default=16384)
    parser.add_argument("--check", action="store_true", help="compare with float64 on 2 x 2 pairs at each size")
    parser.add_argument("--seed", type=int_range(0, 2**32 - 1), default=0)
    return parser


def _timed(fn, device: torch.device) -> tuple[float, object]:
    t = _bench.timed(fn, device)
    return t.wall, t.result


def warm_up(d1: int, d2: int, device: torch.device, precision: str, chunk_rows: int) -> float:
    """One small all-pairs run (2 x 2 layers, 4096 rows) so that set-up costs land outside the timed runs."""
    gen = torch.Generator().manual_seed(1)
    x = [torch.randn(4096, d1, generator=gen).numpy() for _ in range(2)]
    y = [torch.randn(4096, d2, generator=gen).numpy() for _ in range(2)]
    seconds, _ = _timed(lambda: all_pairs([lambda a=a: a for a in x], [lambda b=b: b for b in y],
                                          ["linear", "debiased"], device=device, precision=precision,
                                          chunk_rows=chunk_rows), device)
    return seconds


def bench_one(n: int, d1: int, d2: int, layers1: int, layers2: int, device: torch.device, precision: str,
              chunk_rows: int, check: bool, seed: int) -> dict:
    # three random matrices per model, the second correlated with the first on min(d1, d2) columns
    base1, base2 = _bench.correlated_layers(n, d1, d2, seed)
    src1 = [(lambda i=i: base1[i % 3]) for i in range(layers1)]
    src2 = [(lambda j=j: base2[j % 3]) for j in range(layers2)]
    metrics = ["linear", "debiased"]
    end_to_end, res = _timed(lambda: all_pairs(src1, src2, metrics, device=device, precision=precision,
                                               chunk_rows=chunk_rows), device)
    copy_s = 0.0
    compute_s = end_to_end
    if device.type == "cuda":
        # the copies the run makes: every layer of both models once, from pageable host memory
        def copy_all() -> None:
            for src in src1 + src2:
                src_array = src()
                for s in range(0, n, chunk_rows):
                    torch.from_numpy(np.ascontiguousarray(src_array[s:s + chunk_rows])).to(device)

        copy_s, _ = _timed(copy_all, device)
        dev1 = [torch.from_numpy(b).to(device) for b in base1]
        dev2 = [torch.from_numpy(b).to(device) for b in base2]
        compute_s, _ = _timed(lambda: all_pairs([(lambda i=i: dev1[i % 3]) for i in range(layers1)],
                                                [(lambda j=j: dev2[j % 3]) for j in range(layers2)], metrics,
                                                device=device, precision=precision, chunk_rows=chunk_rows), device)
        del dev1, dev2
    flops = 2.0 * n * (layers1 * d1) * (layers2 * d2) + 2.0 * n * (layers1 * d1 * d1 + layers2 * d2 * d2)
    out = {"rows": n, "d1": d1, "d2": d2, "pairs": layers1 * layers2, "seconds": end_to_end,
           "compute_s": compute_s, "copy_s": copy_s, "pairs_per_s": layers1 * layers2 / compute_s,
           "gflops": flops / compute_s / 1e9, "linear_00": float(res["linear"][0, 0])}
    if check:
        ref = all_pairs(src1[:2], src2[:2], metrics, device=device, precision="float64")
        out["max_abs_diff"] = max(float(np.nanmax(np.abs(res[m][:2, :2] - ref[m]))) for m in ref)
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    device = resolve_device(args.device)
    info = describe_device(device)
    name = (f"{info['gpu_name']} (compute capability {info['compute_capability']})" if device.type == "cuda"
            else f"cpu ({torch.get_num_threads()} threads)")
    print(f"device: {name}; precision {args.precision}; layers {args.layers1} x {args.layers2}")
    with exact_float32():  # as experiment_CKA.py: no TF32
        d1, d2 = args.dims[0]
        print(f"warm-up (4096 rows, 2 x 2 layers, dims {d1}:{d2}): {warm_up(d1, d2, device, args.precision, args.chunk_rows):.2f} s")
        header = (f"{'rows':>8} {'d1':>5} {'d2':>5} {'pairs':>6} {'compute s':>10} {'copy s':>8} {'end to end s':>13} "
                  f"{'pairs/s':>9} {'GFLOP/s':>9}")
        if args.check:
            header += f" {'|mixed-f64|':>12}"
        print(header)
        for d1, d2 in args.dims:
            for n in args.rows:
                try:
                    r = bench_one(n, d1, d2, args.layers1, args.layers2, device, args.precision, args.chunk_rows,
                                  args.check, args.seed)
                except (RuntimeError, MemoryError) as err:
                    if not is_out_of_memory(err):
                        raise
                    raise UserError(f"out of memory at n = {n}, dims {d1}:{d2} ({' '.join(str(err).split())[:120]}); "
                                    "try fewer --rows") from err
                copy = f"{r['copy_s']:>8.2f}" if device.type == "cuda" else f"{'-':>8}"
                line = (f"{r['rows']:>8} {r['d1']:>5} {r['d2']:>5} {r['pairs']:>6} {r['compute_s']:>10.2f} {copy} "
                        f"{r['seconds']:>13.2f} {r['pairs_per_s']:>9.2f} {r['gflops']:>9.1f}")
                if args.check:
                    line += f" {r['max_abs_diff']:>12.1e}"
                print(line, flush=True)
    return 0


if __name__ == "__main__":
    run_cli(main)
