"""The one device resolver of every script (extraction, CKA, ASIF, benchmarks), and what the manifest says
about the device.

``--device`` takes ``auto | cpu | cuda | cuda:N``:

- ``auto``: this process's GPU when torch sees one, else the CPU;
- ``cuda``: this process's GPU, or one clear error when there is none;
- ``cuda:N``: exactly GPU N of those visible to this process.

"This process's GPU" is ``cuda:$LOCAL_RANK`` under torchrun (one process per GPU on a node), ``cuda:0``
otherwise. When a launcher gives each process exactly one visible GPU (``CUDA_VISIBLE_DEVICES`` set per rank,
as Slurm's ``--gpus-per-task=1`` does), every rank sees it as ``cuda:0`` whatever its LOCAL_RANK, and that is
the one used. The chosen GPU is made torch's current device (``torch.cuda.set_device``), so that code which
uses "the current device" (cuBLAS handles, ``torch.cuda.synchronize()``, libraries that call ``.cuda()``)
works on the same GPU, not on GPU 0.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Mapping

from wordreps.common.errors import UserError

DEVICE_HELP = "auto (this process's GPU if torch sees one, else cpu) | cpu | cuda | cuda:N (default: auto)"

# Phrases in the RuntimeError texts of allocation failures that do not say "out of memory": cuBLAS and cuDNN
# report a failed workspace or handle allocation with a status code, and a cuBLAS handle that cannot be created
# for lack of memory comes back as NOT_INITIALIZED from cublasCreate. The CPU allocator says "can't allocate".
_OOM_MARKERS = ("out of memory", "cublas_status_alloc_failed", "cudnn_status_alloc_failed",
                "cublas_status_not_initialized when calling `cublascreate", "can't allocate memory")


def device_arg(text: str) -> str:
    """argparse ``type`` for --device: auto | cpu | cuda | cuda:N (case-insensitive)."""
    t = text.strip().lower()
    if t in ("auto", "cpu", "cuda") or (t.startswith("cuda:") and t[5:].isdigit()):
        return t
    raise argparse.ArgumentTypeError(f"{text!r} is not a device (allowed: auto, cpu, cuda, cuda:N)")


def _no_gpu(text: str) -> UserError:
    return UserError(f"--device {text} asked for but this machine has no usable CUDA GPU; pass --device cpu (or auto)")


def _own_gpu_index(count: int, env: Mapping[str, str]) -> int:
    """``cuda:$LOCAL_RANK`` under torchrun, 0 otherwise; 0 when the process sees a single GPU (one per rank)."""
    local = env.get("LOCAL_RANK", "").strip()
    if not local:
        return 0
    if not local.isdigit():
        raise UserError(f"environment variable LOCAL_RANK={local!r} is not an integer; unset it or pass "
                        "--device cuda:N")
    rank = int(local)
    if rank < count:
        return rank
    if count == 1:
        return 0  # one visible GPU per process: it is this rank's
    raise UserError(f"LOCAL_RANK={rank} but this process sees {count} GPUs (cuda:0..cuda:{count - 1}); start one "
                    "process per GPU on each node, or pass --device cuda:N")


def resolve_device(text: str | None, env: Mapping[str, str] | None = None):
    """torch.device for a --device value; CUDA devices get an explicit index and become torch's current device.

    A GPU asked for on a machine without one, or an index past the visible GPUs, is a :class:`UserError`.
    """
    import torch

    env = os.environ if env is None else env
    text = (text or "auto").strip().lower()
    try:
        device_arg(text)
    except argparse.ArgumentTypeError as err:
        raise UserError(f"--device: {err}") from None
    if text == "cpu" or (text == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise _no_gpu(text)
    count = torch.cuda.device_count()
    index = int(text.split(":")[1]) if ":" in text else _own_gpu_index(count, env)
    if index >= count:
        raise UserError(f"--device {text}: this process sees {count} GPU(s) (cuda:0..cuda:{count - 1}); pass one of "
                        "those, or check CUDA_VISIBLE_DEVICES")
    device = torch.device("cuda", index)
    torch.cuda.set_device(device)
    return device


def cuda_capability(device) -> tuple[int, int]:
    """(major, minor) compute capability of a CUDA device (8.0 = A100, 9.0 = H100/H200, 7.0 = V100, 7.5 = T4)."""
    import torch

    return tuple(int(v) for v in torch.cuda.get_device_capability(device))  # type: ignore[return-value]


def describe_device(device) -> dict:
    """What the manifest records about the device: type, and for a GPU its name and compute capability.

    A CPU's model is not recorded: float32 results differ between CPUs only in the last bits, and a folder
    must stay resumable on another CPU machine of the same software versions. ``None`` is a backend without a
    torch device (GloVe's lookups run on the CPU): recorded as the CPU, without importing torch for it.
    """
    if device is None:
        return {"device_type": "cpu"}
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return {"device_type": device.type}
    major, minor = cuda_capability(device)
    return {"device_type": "cuda", "gpu_name": torch.cuda.get_device_name(device),
            "compute_capability": f"{major}.{minor}"}


def is_out_of_memory(err: BaseException) -> bool:
    """True for an allocation failure of torch (CUDA or CPU), cuBLAS or cuDNN, whatever its wording."""
    if isinstance(err, MemoryError):
        return True
    # a run that never loaded torch (GloVe) cannot have raised a torch error: do not import it just to ask
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(err, torch.OutOfMemoryError):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and any(marker in text for marker in _OOM_MARKERS)
