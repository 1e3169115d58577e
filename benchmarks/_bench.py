"""Helpers the benchmark scripts share: timing (device synchronised) and the random layer data of the CKA and
measures benchmarks. A module beside the scripts, not a script; they import it with

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import _bench
"""
from __future__ import annotations

import time
from typing import Callable, NamedTuple

import numpy as np


def sync(device) -> None:
    """Wait for the device's queued work (a no-op for a CPU or ``None``)."""
    if device is not None and getattr(device, "type", None) == "cuda":
        import torch

        torch.cuda.synchronize(device)


class Timed(NamedTuple):
    wall: float     # seconds
    cpu: float      # CPU seconds of this process, all its threads (time.process_time)
    result: object  # what the timed function returned


def timed(fn: Callable[[], object], device=None) -> Timed:
    """Run ``fn`` once; wall and CPU seconds, the device synchronised before and after."""
    sync(device)
    start, cpu = time.perf_counter(), time.process_time()
    result = fn()
    sync(device)
    return Timed(time.perf_counter() - start, time.process_time() - cpu, result)


def correlated_layers(n: int, d1: int, d2: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Three random float32 (n, d1) matrices for model 1 and three (n, d2) for model 2 (torch's generator, seeded);
    each of model 2's gets half of model 1's first matrix added on the first min(d1, d2) columns, so the
    similarities are not all near their baseline whichever model is wider."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    base1 = [torch.randn(n, d1, generator=gen).numpy() for _ in range(3)]
    base2 = [torch.randn(n, d2, generator=gen).numpy() for _ in range(3)]
    k = min(d1, d2)
    for b in base2:
        b[:, :k] += 0.5 * base1[0][:, :k]
    return base1, base2
