"""Compute precision of the models' forward passes: one rule for every device and every model family.

``--precision`` (every embedding script but GloVe's) says how a model's arithmetic runs; ``--dtype`` says how
the vectors are stored. The two are independent. Whatever the precision, word pooling (the mean of a word's
frames or sub-tokens) is computed in float32 from the hidden states the model returned.

- ``float32``: no autocast; float32 matmuls in full float32 (no TF32 on a GPU, no bfloat16 passes on a CPU).
- ``bfloat16`` / ``float16``: ``torch.autocast`` with that dtype. Matmuls and convolutions run in the lower
  precision; torch keeps norms, softmax and reductions in float32. Hidden states come back in a mix of both
  (in Hugging Face wav2vec2 and BERT the residual stream stays float32 on a CPU, bfloat16 under CUDA autocast
  where the residual additions are bfloat16 tensors).
- ``auto`` (the default), decided for the device the model runs on:
  - CUDA: bfloat16 on compute capability 8.0 or newer (A100, H100, L4, RTX 30xx+), float16 below (V100, T4),
    from the target GPU's own capability. (``torch.cuda.is_bf16_supported()`` is not used: in torch 2.8 it
    counts emulated bf16 as supported and looks at the current device rather than the target one.)
  - CPU: bfloat16 when the CPU computes it natively (AVX512-BF16 or AMX-BF16: Intel Cooper Lake, Sapphire
    Rapids and later, AMD Zen 4 and later), float32 elsewhere. On other CPUs torch would emulate bfloat16,
    which is slower than float32.
  - A family that has not been checked under autocast (easyaudio's models) resolves ``auto`` to float32; an
    explicit ``bfloat16`` is still honoured.

Refused, with one line: ``bfloat16`` on a GPU older than compute capability 8.0 (emulated, slow) and
``float16`` on a CPU (no native float16 matmuls on the CPUs torch targets).

:func:`exact_float32` is the one scoped switch for the global numeric settings (TF32, float32 matmul
precision, cuDNN determinism): set on entry, restored exactly as the user had them on exit.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import platform
from typing import Iterator

from wordreps.common.errors import UserError

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
PRECISION_HELP = ("compute precision of the model: auto (bfloat16 on GPUs of compute capability >= 8.0 and on CPUs "
                  "with native bfloat16, float16 on older GPUs, float32 on other CPUs) | float32 | bfloat16 | float16; "
                  "independent of --dtype, pooling is always float32 (default: auto)")
# flags in /proc/cpuinfo that mean native bfloat16 arithmetic on x86
_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def precision_arg(text: str) -> str:
    """argparse ``type`` for --precision (case-insensitive; ``bf16``/``fp16``/``fp32`` accepted as aliases)."""
    t = text.strip().lower()
    t = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32"}.get(t, t)
    if t in PRECISIONS:
        return t
    raise argparse.ArgumentTypeError(f"{text!r} is not a precision (allowed: {', '.join(PRECISIONS)})")


def _cpuinfo_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@functools.lru_cache(maxsize=None)
def cpu_has_native_bf16() -> bool:
    """True when this CPU has AVX512-BF16 or AMX-BF16, as torch's own CPU probe (or /proc/cpuinfo) reports."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False  # ARM bfloat16 (Graviton 3, Apple M2) is not measured here: float32 stays the default
    try:
        import torch

        probe = torch._C._cpu  # the probe behind torch.backends.cpu.get_cpu_capability()
        return bool(probe._is_avx512_bf16_supported() or probe._is_amx_tile_supported())
    except (ImportError, AttributeError):
        return bool(_cpuinfo_flags() & set(_CPU_BF16_FLAGS))


def resolve_precision(requested: str, device, *, family_checked: bool = True) -> str:
    """The precision a model on ``device`` will run at: ``float32``, ``bfloat16`` or ``float16``.

    ``family_checked=False``: the model family has not been checked under autocast, so ``auto`` means float32.
    """
    import torch

    from wordreps.common.devices import cuda_capability

    requested = precision_arg(requested or "auto")
    device = torch.device(device)
    if device.type == "cuda":
        major, minor = cuda_capability(device)
        native_bf16 = major >= 8
        if requested == "auto":
            if not family_checked:
                return "float32"
            return "bfloat16" if native_bf16 else "float16"
        if requested == "bfloat16" and not native_bf16:
            raise UserError(f"--precision bfloat16: GPU {device} (compute capability {major}.{minor}) has no native "
                            "bfloat16 and would emulate it slowly; pass --precision float16 or auto (float16 there), "
                            "or float32")
        return requested
    if requested == "auto":
        return "bfloat16" if family_checked and cpu_has_native_bf16() else "float32"
    if requested == "float16":
        raise UserError("--precision float16 is for GPUs; on a CPU pass --precision bfloat16 (fast where the CPU has "
                        "avx512_bf16 or amx_bf16) or float32")
    return requested


def torch_dtype(precision: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[precision]


def autocast(device, precision: str) -> contextlib.AbstractContextManager:
    """The forward pass's context: nothing for float32, ``torch.autocast`` with the precision's dtype otherwise."""
    import torch

    if precision == "float32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch_dtype(precision))


def cast_matmul_weights(model, precision: str) -> int:
    """Store the weights of the model's Linear and Conv layers in the autocast dtype, once; returns how many.

    CPU and CUDA autocast cast these weights to the lower precision at every forward pass (its cache lives only
    as long as one autocast context, here one batch): for wav2vec2-base on a CPU that is about a quarter of
    the bfloat16 forward pass. Autocast would cast exactly these weights to exactly this dtype, so the outputs
    are bit-identical (tests/test_precision.py checks every family). Layers whose weight is recomputed at each
    pass (weight norm, parametrizations: the positional convolutions) are left alone, as is everything else
    (embeddings, norms). Call it after the last forward pass run outside autocast. float32: nothing to do.
    """
    import torch

    if precision == "float32":
        return 0
    dtype = torch_dtype(precision)
    cast = 0
    for module in model.modules():
        if not isinstance(module, (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)):
            continue
        if hasattr(module, "weight_g") or hasattr(module, "parametrizations") or \
                not isinstance(getattr(module, "weight", None), torch.nn.Parameter):
            continue
        module.to(dtype)
        cast += 1
    return cast


def _conv1d_by_matmul(self, x):
    """``Conv1d.forward`` for a plain convolution, as one matrix product over the unfolded input windows."""
    import torch.nn.functional as F

    k, stride = self.kernel_size[0], self.stride[0]
    windows = x.unfold(2, k, stride)                                         # (B, C_in, T', k)
    windows = windows.transpose(1, 2).reshape(x.shape[0], windows.shape[2], -1)  # (B, T', C_in * k)
    return F.linear(windows, self.weight.reshape(self.out_channels, -1), self.bias).transpose(1, 2)


def convolutions_as_matmuls(model, precision: str, device) -> int:
    """On a CPU at bfloat16, run every plain ``Conv1d`` (no padding, dilation or groups: a wav2vec2-style
    feature encoder's) as a matrix product over its unfolded input windows; returns how many.

    oneDNN's bfloat16 convolutions gain little over float32 on this project's CPU, while its bfloat16 matrix
    products use the CPU's bfloat16 units: wav2vec2-base's forward pass took 0.32 s as convolutions and 0.24 s
    as products (10 s of audio, 2 threads), with the same difference from float32 (1.5e-2 relative; the
    products are in bfloat16 with float32 accumulation either way, only the order of the sums differs). GPUs
    keep cuDNN's convolutions. The manifest records the change (``describe.conv1d``).
    """
    import types

    import torch

    if precision != "bfloat16" or torch.device(device).type != "cpu":
        return 0
    done = 0
    for module in model.modules():
        if (isinstance(module, torch.nn.Conv1d) and module.groups == 1 and module.dilation[0] == 1
                and module.padding in ((0,), "valid") and module.padding_mode == "zeros"):
            module.forward = types.MethodType(_conv1d_by_matmul, module)
            done += 1
    return done


CONV1D_AS_MATMUL = "as matrix products over unfolded windows (bfloat16 on the CPU)"


def compute_record(device, precision: str) -> dict:
    """The manifest's ``compute`` entry: device type (+ GPU name and capability), precision, cuDNN determinism.

    Two runs whose records differ must not write into one folder (a CPU shard beside a GPU shard, float32
    beside bfloat16, an A100 shard beside an H100 one): their vectors differ in more than the last bit.
    """
    from wordreps.common.devices import describe_device

    record = {**describe_device(device), "precision": precision, "pooling": "float32"}
    if record["device_type"] == "cuda":
        record["cudnn_deterministic"] = True  # set by exact_float32(deterministic=True) around extraction
    return record


@contextlib.contextmanager
def exact_float32(deterministic: bool = False) -> Iterator[None]:
    """Scoped numeric settings: float32 matmuls in full float32, cuDNN deterministic if asked; restored exactly.

    On entry: ``torch.set_float32_matmul_precision("highest")`` (which turns cuBLAS TF32 off: in torch 2.8
    ``torch.backends.cuda.matmul.allow_tf32`` is read from it, and on CPUs it keeps oneDNN from bfloat16
    passes), ``torch.backends.cudnn.allow_tf32 = False``, and with ``deterministic`` cuDNN's deterministic
    algorithms without autotuning (``cudnn.deterministic = True``, ``cudnn.benchmark = False``).
    On exit every one of these is put back as it was. The matmul precision is restored through
    ``set_float32_matmul_precision`` and never through ``allow_tf32``, whose setter would turn a user's
    "medium" into "high". Works the same with or without a GPU (the settings are process-wide flags).
    """
    import torch

    cudnn = torch.backends.cudnn
    saved = (torch.get_float32_matmul_precision(), cudnn.allow_tf32, cudnn.deterministic, cudnn.benchmark)
    torch.set_float32_matmul_precision("highest")
    cudnn.allow_tf32 = False
    if deterministic:
        cudnn.deterministic = True
        cudnn.benchmark = False
    try:
        yield
    finally:
        matmul_precision, cudnn.allow_tf32, cudnn.deterministic, cudnn.benchmark = saved
        torch.set_float32_matmul_precision(matmul_precision)
