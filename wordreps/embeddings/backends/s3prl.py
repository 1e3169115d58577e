"""s3prl upstreams (by hub name) and converted wav2vec2 checkpoints: the ``s3prl`` family.

Layers, padding and what layer 0 is: see :mod:`wordreps.embeddings.backends.speech`.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from wordreps.alignments.geometry import FrameGeometry
from wordreps.common.errors import UserError, one_line
from wordreps.common.hashing import sha256_files
from wordreps.common.precision import cast_matmul_weights, convolutions_as_matmuls
from wordreps.embeddings.backends.speech import (
    SpeechBackend,
    conv_geometry,
    conv_output_lengths,
)
from wordreps.embeddings.families import is_s3prl_checkpoint

# ---------------------------------------------------------------------------------------------- s3prl

def _find_conv_stack(upstream: torch.nn.Module) -> tuple[list[int], list[int], bool] | None:
    """(kernels, strides, uses_group_norm) of a wav2vec2-style ``feature_extractor.conv_layers``, if any."""
    for name, module in upstream.named_modules():
        if name.endswith("feature_extractor") and hasattr(module, "conv_layers"):
            kernels, strides = [], []
            for block in module.conv_layers:
                conv = next((m for m in block.modules() if isinstance(m, torch.nn.Conv1d)), None)
                if conv is None:
                    return None
                kernels.append(int(conv.kernel_size[0]))
                strides.append(int(conv.stride[0]))
            group = any(isinstance(m, torch.nn.GroupNorm) for m in module.modules())
            return kernels, strides, group
    return None


def build_quietly(make, **kwargs):
    """``make(**kwargs)`` without torch's FutureWarning about the deprecated ``weight_norm`` that s3prl's wav2vec2
    uses for its positional convolution: printed on every load, it says nothing a user here can act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.nn\.utils\.weight_norm.* is deprecated",
                                category=FutureWarning)
        return make(**kwargs)


class S3prlBackend(SpeechBackend):
    """An s3prl upstream by hub name, or a converted wav2vec2 checkpoint through ``wav2vec2_custom``."""

    family = "s3prl"

    def __init__(self, model: str, device: torch.device | str, ckpt: str | None = None, precision: str = "auto"):
        super().__init__(str(ckpt) if ckpt else model, device, precision)
        self.upstream_name = model if not ckpt or model.endswith("_custom") else "wav2vec2_custom"
        self.ckpt = ckpt
        self._describe: dict = {"source": "s3prl", "upstream": self.upstream_name}
        try:
            if ckpt:
                if not os.path.isfile(ckpt):
                    raise UserError(f"s3prl checkpoint file {ckpt} does not exist; check the path, or pass that of a "
                                    "converted wav2vec2 checkpoint (torch.save of task_cfg, model_cfg, model_weight)")
                self._describe["ckpt_sha256"] = sha256_files([Path(ckpt)])
                if self.upstream_name == "wav2vec2_custom":
                    # direct import: the same function s3prl.hub exposes, without loading all 190 upstreams
                    from s3prl.upstream.wav2vec2.hubconf import wav2vec2_custom as make
                else:
                    import s3prl.hub
                    make = getattr(s3prl.hub, self.upstream_name)
                upstream = build_quietly(make, ckpt=str(ckpt))
            else:
                import s3prl.hub
                upstream = build_quietly(getattr(s3prl.hub, model))
        except UserError:
            raise
        except Exception as err:  # noqa: BLE001 - torch.load / s3prl / download errors of every kind
            msg = one_line(err)
            if ckpt:
                raise UserError(f"s3prl checkpoint {ckpt} cannot be loaded ({type(err).__name__}: {msg}); pass a file "
                                "converted with s3prl's wav2vec2 convert.py (keys task_cfg, model_cfg, model_weight)"
                                ) from err
            raise UserError(f"s3prl upstream {model} cannot be loaded ({type(err).__name__}: {msg}); s3prl downloads "
                            "its weights on first use (into ~/.cache/torch/hub): run once where the network is "
                            "reachable, or pass a local converted checkpoint with --s3prl_ckpt") from err
        self.upstream = upstream.to(self.device).eval()
        self.sample_rate_hz = 16000  # every s3prl upstream takes 16 kHz waveforms
        hop = int(self.upstream.get_downsample_rates("hidden_states"))
        stack = _find_conv_stack(self.upstream)
        if stack is not None:
            self._kernels, self._strides, group = stack
            self.geometry = conv_geometry(self._kernels, self._strides, self.sample_rate_hz)
            if self.geometry.hop_samples != hop:
                raise UserError(f"s3prl upstream {self.model_name}: conv stack hop {self.geometry.hop_samples} "
                                f"differs from get_downsample_rates {hop}; this upstream is not supported")
            # a stack of positional convs (data2vec's pos_conv_depth > 1) lets padding leak into valid frames
            pos_convs = sum(isinstance(m, torch.nn.Conv1d) for name, m in self.upstream.named_modules()
                            if ".pos_conv" in name or name.endswith("pos_conv"))
            self.padding_sensitive = group or pos_convs > 1
            self._describe["receptive_field_from"] = "conv stack"
        else:
            # filterbank-style upstreams: a 25 ms analysis window at the hop s3prl reports
            self._kernels = self._strides = None
            self.geometry = FrameGeometry(self.sample_rate_hz, hop, 400)
            self.padding_sensitive = True  # unknown internals: never pad
            self._describe["receptive_field_from"] = "assumed 25 ms window (no conv stack found)"
        # number of hidden states from a one-second probe (cheap, and exact for any upstream)
        with torch.inference_mode():
            probe = self.upstream([torch.zeros(self.sample_rate_hz, device=self.device)])["hidden_states"]
        cast_matmul_weights(self.upstream, self.precision)  # after the probe, which runs without autocast
        self._conv1d_as_matmul = convolutions_as_matmuls(self.upstream, self.precision, self.device)
        self.num_layers = len(probe)
        self.dim = int(probe[0].shape[-1])
        self.layer_names = [f"layer_{i}" for i in range(self.num_layers)]
        self._describe.update(padding_sensitive=self.padding_sensitive, hop_samples=hop,
                              layer_0="input to the first transformer block (projected CNN features + positional "
                                      "conv), as s3prl's hidden_states[0]")
        cfg = getattr(getattr(self.upstream, "model", None), "cfg", None)
        if cfg is not None:
            self._describe["extractor_mode"] = str(getattr(cfg, "extractor_mode", ""))

    def _hidden(self, wavs):
        states = self.upstream(wavs)["hidden_states"]
        lengths = [int(w.shape[0]) for w in wavs]
        max_t = int(states[0].shape[1])
        if self._kernels is not None:
            frames = conv_output_lengths(lengths, self._kernels, self._strides)
        else:
            frames = [max(1, round(n / self.geometry.hop_samples)) for n in lengths]
        return list(states), [min(f, max_t) for f in frames]


# ---------------------------------------------------------------------------------------------- loading

def load_s3prl_backend(model: str, device: torch.device | str, s3prl_ckpt: str | None = None,
                       precision: str = "auto", **_: object) -> S3prlBackend:
    """The family table's loader: an s3prl hub name, or a converted checkpoint (``s3prl_ckpt``, or a file
    path as ``model``) loaded through ``wav2vec2_custom`` (or ``model`` when it names another ``*_custom``);
    ``precision``: see ``common/precision.py``."""
    if s3prl_ckpt:
        return S3prlBackend(model or "wav2vec2_custom", device, ckpt=s3prl_ckpt, precision=precision)
    if is_s3prl_checkpoint(model):  # the family table's test: a missing .pt is "does not exist", not a hub name
        return S3prlBackend("wav2vec2_custom", device, ckpt=model, precision=precision)
    return S3prlBackend(model, device, precision=precision)
