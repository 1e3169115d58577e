"""The one table of model families: everything the toolkit knows about a family, in one row.

A family is one backend module (``wordreps/embeddings/backends/<module>.py``) plus what the rest of the
toolkit needs to know without loading a model: the kind a user names it by (``kind:model`` in the runner,
and which stage script extracts it), its modality (which side of ASIF), how its model names look, and the
frame geometry its names or config files imply (for planning alignments before any weights are read).

Adding a family: write the backend module (a :class:`~wordreps.embeddings.base.Backend` subclass and a
loader), add one :class:`Family` row below, and, for a new kind, one stage script like
``embeddings/speech_embedding.py``. Nothing else names families.

Names are matched without importing torch or the family's library: these functions run while planning.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

from wordreps.alignments.geometry import FrameGeometry
from wordreps.common.errors import UserError
from wordreps.embeddings.base import Backend

# ------------------------------------------------------------------------------------------ frame geometries
#
# wav2vec2 / HuBERT / WavLM / data2vec conv stack: kernels (10,3,3,3,3,2,2), strides (5,2,2,2,2,2,2)
# -> 25 ms windows every 20 ms at 16 kHz.
WAV2VEC2_CONV = FrameGeometry(16000, 320, 400)
ENCODECMAE = FrameGeometry(24000, 320, 320)     # EnCodec encoder: 75 frames/s at 24 kHz
# BEATs: 128-bin fbank, 25 ms window, 10 ms shift, 16x16 patches -> one time step per 16 fbank frames
# (160 ms); a patch spans 15 shifts + one window = 150 + 25 = 175 ms = 2800 samples.
BEATS = FrameGeometry(16000, 2560, 2800)
# AST: same fbank, 16x16 patches with a time stride of 10 fbank frames (100 ms); a patch also spans 175 ms.
AST = FrameGeometry(16000, 1600, 2800)

HF_SPEECH_TYPES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio")   # config.json model_type values
AST_MODEL_TYPE = "audio-spectrogram-transformer"
# s3prl / Hugging Face names of models with the wav2vec2 conv stack (lower case, without an "org/" prefix)
_CONV_STACK_NAME = re.compile(r"(distil)?(wav2vec2|hubert|wavlm|data2vec|xls[-_]?r|mms)([-_].*)?")
_VECTOR_FILE_SUFFIXES = (".txt", ".txt.gz", ".txt.bz2", ".txt.xz", ".vec", ".bin", ".bin.gz", ".kv", ".gz", ".npy")


def _base_name(name: str) -> str:
    return name.strip().lower().rstrip("/").rsplit("/", 1)[-1]


def _config(name: str) -> dict | None:
    """A local folder's config.json, or None (hub names are never fetched while planning)."""
    path = Path(name) / "config.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _model_type(name: str) -> str | None:
    config = _config(name)
    return None if config is None else str(config.get("model_type", ""))


@lru_cache(maxsize=1)
def s3prl_hub_names() -> frozenset[str]:
    """Upstream names s3prl.hub exposes, found by reading its hubconf files (importing s3prl.hub takes ~6 s)."""
    try:
        spec = importlib.util.find_spec("s3prl")
    except (ImportError, ValueError):
        return frozenset()
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    root = Path(list(spec.submodule_search_locations)[0]) / "upstream"
    names: set[str] = set()
    for hubconf in root.glob("*/hubconf.py"):
        try:
            text = hubconf.read_text(encoding="utf-8")
        except OSError:
            continue
        names.update(m.group(1) for m in re.finditer(r"^def ([a-zA-Z][\w]*)\(", text, flags=re.M))
    return frozenset(names)


# ------------------------------------------------------------------------------------ per-family matching

def _glove_matches(name: str) -> bool:
    low = name.strip().lower()
    return low == "glove" or low.endswith(_VECTOR_FILE_SUFFIXES)


def _hf_text_matches(name: str) -> bool:
    model_type = _model_type(name)
    return model_type is not None and model_type not in HF_SPEECH_TYPES and model_type != AST_MODEL_TYPE


def is_s3prl_checkpoint(name: str) -> bool:
    """A converted s3prl checkpoint (wav2vec2_custom): an existing file, or a ``.pt``/``.ckpt`` name (possibly
    still to be made by an earlier step; its loader says so when it is still missing). Never a folder."""
    if os.path.isdir(name):
        return False
    return os.path.isfile(name) or name.endswith((".pt", ".ckpt"))


def _s3prl_matches(name: str) -> bool:
    if os.path.isdir(name):
        return False  # a local folder (./wav2vec2 made by save_pretrained) is a Hugging Face model, not a hub name
    if is_s3prl_checkpoint(name):
        return True
    return "/" not in name and (name in s3prl_hub_names() or bool(_CONV_STACK_NAME.fullmatch(name.lower())))


def _s3prl_geometry(name: str) -> FrameGeometry | None:
    if is_s3prl_checkpoint(name) or _CONV_STACK_NAME.fullmatch(_base_name(name)):
        return WAV2VEC2_CONV
    return None  # other upstreams (filterbank, apc, ...): the geometry is given by flags


def _hf_speech_matches(name: str) -> bool:
    if os.path.isdir(name):
        return _model_type(name) in HF_SPEECH_TYPES
    return "/" in name and bool(_CONV_STACK_NAME.fullmatch(_base_name(name)))


def _hf_speech_geometry(name: str) -> FrameGeometry | None:
    config = _config(name)
    if config is not None and "conv_kernel" in config:
        from wordreps.embeddings.backends.speech import conv_geometry

        return conv_geometry(config["conv_kernel"], config["conv_stride"], 16000)
    return WAV2VEC2_CONV if _CONV_STACK_NAME.fullmatch(_base_name(name)) else None


def _easyaudio_matches(name: str) -> bool:
    return name.strip().lower().startswith(("encodecmae", "beats", "byola"))


def _easyaudio_geometry(name: str) -> FrameGeometry | None:
    low = name.strip().lower()
    if low.startswith("encodecmae"):
        return ENCODECMAE
    return BEATS if low.startswith("beats") else None


def _ast_matches(name: str) -> bool:
    if os.path.isdir(name):
        return _model_type(name) == AST_MODEL_TYPE
    base = _base_name(name)
    return "ast" in base.split("-") or base.startswith(("ast_", "audio-spectrogram-transformer",
                                                       "audio_spectrogram_transformer"))


def _ast_geometry(name: str) -> FrameGeometry | None:
    config = _config(name)
    if config is not None and config.get("model_type") == AST_MODEL_TYPE:
        from wordreps.embeddings.backends.hf_audio import ast_geometry

        return ast_geometry(16000, int(config.get("patch_size", 16)), int(config.get("time_stride", 10)))
    return AST if _ast_matches(name) else None


# ---------------------------------------------------------------------------------------------- the table

@dataclass(frozen=True)
class Family:
    """One model family. ``matches`` is strong evidence that a name belongs here (used to guess a bare name's
    kind); within a kind, a name no family matches goes to the kind's default family (the last row of that
    kind), whose loader gives the error that says what names the kind takes."""
    name: str                      # recorded in every manifest: glove | hf-text | s3prl | hf-speech | ...
    kind: str                      # what users call it (runner's kind:model) and which script extracts it
    modality: str                  # "text" or "audio": which side of a cross-modal comparison
    script: str                    # the stage script
    loader: str                    # "module:function", imported only when a model of the family is loaded
    matches: Callable[[str], bool]
    geometry: Callable[[str], FrameGeometry | None] | None   # None: text (no frames)
    geometry_names: str = ""       # known names with a geometry, for messages and docs
    model_flag: str = "--model"    # how the script is given a model of this family
    folder_name: str | None = None # the outputs' folder name when not derived from the model's (GloVe: a file)
    takes_precision: bool = True   # its script has --precision (a neural model; GloVe is a table lookup)
    requires: str | None = None    # an optional package the family needs (not installable from PyPI)
    # the libraries whose versions shape its numbers, recorded in every manifest (with python and numpy)
    libraries: tuple[str, ...] = ("torch", "transformers")

    def load(self, model: str, device=None, **opts) -> Backend:
        module, _, function = self.loader.partition(":")
        return getattr(importlib.import_module(module), function)(model, device if device is not None else "cpu",
                                                                  **opts)

    def model_args(self, model: str) -> list[str]:
        """The script flags that name ``model`` (an s3prl checkpoint file goes through --s3prl_ckpt)."""
        if self.name == "s3prl" and is_s3prl_checkpoint(model):
            return ["--s3prl_ckpt", model]
        return [self.model_flag, model]

    def available(self) -> bool:
        """False when the family needs an optional package that cannot be imported here."""
        if self.requires is None:
            return True
        try:
            importlib.import_module(self.requires)
        except Exception:  # an installed but broken package counts as absent; its loader says why
            return False
        return True


_B = "wordreps.embeddings.backends."
FAMILIES: tuple[Family, ...] = (
    Family("glove", "glove", "text", "embeddings/glove_embedding.py", _B + "glove:load_glove_backend",
           _glove_matches, None, model_flag="--glove", folder_name="glove", takes_precision=False, libraries=()),
    Family("easyaudio", "audio", "audio", "embeddings/audio_embeddings.py", _B + "easyaudio:load_easyaudio_backend",
           _easyaudio_matches, _easyaudio_geometry, "encodecmae_base, encodecmae_large (24 kHz, 75 Hz); BEATs_iter3 "
           "and other BEATs_* (16 kHz, 160 ms)", requires="easyaudio", libraries=("torch", "easyaudio")),
    Family("hf-audio", "audio", "audio", "embeddings/audio_embeddings.py", _B + "hf_audio:load_ast_backend",
           _ast_matches, _ast_geometry, "ast, MIT/ast-finetuned-* (16 kHz, 100 ms)"),
    Family("s3prl", "speech", "audio", "embeddings/speech_embedding.py", _B + "s3prl:load_s3prl_backend",
           _s3prl_matches, _s3prl_geometry, "wav2vec2, wav2vec2_large_960, hubert, hubert_large_ll60k, "
           "wavlm_base_plus, wavlm_large, data2vec, distilhubert (16 kHz, 20 ms)", libraries=("torch", "s3prl")),
    Family("hf-speech", "speech", "audio", "embeddings/speech_embedding.py", _B + "hf_speech:load_hf_speech_backend",
           _hf_speech_matches, _hf_speech_geometry, "facebook/wav2vec2-base, microsoft/wavlm-large, ... (16 kHz, "
           "20 ms)"),
    Family("hf-text", "text", "text", "embeddings/nlp_embedding.py", _B + "hf_text:load_hf_text_backend",
           _hf_text_matches, None),
)
KINDS: tuple[str, ...] = tuple(dict.fromkeys(f.kind for f in FAMILIES))


def family(name: str) -> Family:
    """The family called ``name`` (glove, hf-text, s3prl, hf-speech, easyaudio, hf-audio)."""
    for fam in FAMILIES:
        if fam.name == name:
            return fam
    raise UserError(f"unknown model family {name!r}; choose one of {', '.join(f.name for f in FAMILIES)}")


def family_for(model: str, kind: str | None = None) -> Family:
    """The family of ``model``: the first row (of ``kind``, when given) whose names match it; otherwise the
    kind's default family, or, with no kind, a Hugging Face text encoder (any other name is one)."""
    if kind is not None and kind not in KINDS:
        raise UserError(f"unknown model kind {kind!r}; choose one of {', '.join(KINDS)}")
    rows = [f for f in FAMILIES if kind is None or f.kind == kind]
    for fam in rows:
        if fam.matches(model):
            return fam
    return rows[-1]


def load_backend(kind: str, model: str, device=None, *, family_name: str | None = None, **opts) -> Backend:
    """Build the backend for ``model`` of ``kind`` (or of the family ``family_name``); ``opts`` go to its loader."""
    fam = family(family_name) if family_name else family_for(model, kind)
    return fam.load(model, device, **opts)


def geometry_for_model(name: str) -> FrameGeometry:
    """The frame geometry a model name (or local folder, or s3prl checkpoint) implies, without loading it;
    :class:`UserError` listing the known names otherwise."""
    for fam in FAMILIES:
        if fam.geometry is not None and fam.matches(name):
            geometry = fam.geometry(name)
            if geometry is not None:
                return geometry
    known = "; ".join(f.geometry_names for f in FAMILIES if f.geometry_names)
    raise UserError(f"no frame geometry is known for model {name!r} (known: {known}); "
                    "give the geometry with --stride/--frame_rate/--hop_samples and --sample_rate instead")


def lookup_model_geometry(name: str) -> FrameGeometry | None:
    """:func:`geometry_for_model`, or None for a name with no known geometry."""
    try:
        return geometry_for_model(name)
    except UserError:
        return None
