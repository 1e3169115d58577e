"""How many threads a stage uses: sized from the CPUs this process may use, not from the machine's cores.

On a shared machine or a cluster node the process may use fewer CPUs than the machine has: Slurm gives a task
``SLURM_CPUS_PER_TASK`` CPUs, ``taskset``/cpusets narrow the affinity mask, a container's cgroup caps CPU time
(``cpu.max``). Torch's intra-op threads, the audio loader threads and the ``.npy`` writer threads are sized
from :func:`available_cpus`, so that they do not oversubscribe the cores they share, and torch's OpenMP threads
wait passively (:data:`WAIT_POLICY`): an OpenMP thread that waits for a descheduled partner spins, and on a
loaded machine that spinning costs more CPU time than the work (docs/benchmarks.md, "Busy machines").
``--num_threads`` overrides torch's count.
"""
from __future__ import annotations

import math
import os
import sys
from typing import Mapping

MAX_IO_THREADS = 4   # audio loaders and writers wait on the disk as much as on a CPU: a few are enough
# OpenMP threads that wait for work sleep instead of spinning: on a shared machine a spinning thread burns the
# CPU another job (or its own descheduled partner) needs (docs/benchmarks.md, "Busy machines": the speech stage
# took 8-10x less CPU and wall time on a shared machine; not measured on a quiet one). A user's OMP_WAIT_POLICY
# is kept.
WAIT_POLICY = "PASSIVE"


def _cgroup_cpu_limit(path: str = "/sys/fs/cgroup/cpu.max") -> int | None:
    """CPUs a cgroup v2 quota allows (``cpu.max`` = "quota period", or "max period" for none)."""
    try:
        with open(path) as fh:
            quota, period = fh.read().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return max(1, math.ceil(int(quota) / int(period)))
    except (ValueError, ZeroDivisionError):
        return None


def available_cpus(env: Mapping[str, str] | None = None, cgroup_path: str = "/sys/fs/cgroup/cpu.max") -> int:
    """CPUs this process may use: the smallest of Slurm's ``SLURM_CPUS_PER_TASK``, the affinity mask and a
    cgroup CPU quota (each only when present); at least 1."""
    env = os.environ if env is None else env
    try:
        counts = [len(os.sched_getaffinity(0))]
    except (AttributeError, OSError):  # not on Linux
        counts = [os.cpu_count() or 1]
    slurm = env.get("SLURM_CPUS_PER_TASK", "")
    if slurm.strip().isdigit() and int(slurm) > 0:
        counts.append(int(slurm))
    quota = _cgroup_cpu_limit(cgroup_path)
    if quota is not None:
        counts.append(quota)
    return max(1, min(counts))


def io_threads(cap: int = MAX_IO_THREADS) -> int:
    """Threads for background audio loading or file writing: at most ``cap``, at most the usable CPUs."""
    return max(1, min(cap, available_cpus()))


def default_torch_threads(env: Mapping[str, str] | None = None) -> int:
    """``OMP_NUM_THREADS`` when the user set it, else :func:`available_cpus`."""
    env = os.environ if env is None else env
    omp = env.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) > 0:
        return int(omp)
    return available_cpus(env)


def set_torch_threads(num_threads: int | None) -> int:
    """Torch's intra-op threads: ``num_threads``, or :func:`default_torch_threads`; returns the count.

    A count asked for is set exactly (importing torch). The default, when torch is not imported yet, is set as
    ``OMP_NUM_THREADS`` instead (torch reads it when imported, never above the CPUs it sees), so that a script
    refusing bad input does not pay for importing torch first.
    """
    count = int(num_threads) if num_threads else default_torch_threads()
    torch = sys.modules.get("torch")
    if torch is None:  # read by OpenMP when torch loads it: too late afterwards
        os.environ.setdefault("OMP_WAIT_POLICY", WAIT_POLICY)
    if torch is None and not num_threads:
        os.environ["OMP_NUM_THREADS"] = str(count)
        return count
    if torch is None:
        import torch
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return count
