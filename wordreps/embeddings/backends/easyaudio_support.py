"""What the easyaudio adapter needs beyond easyaudio's documented interface, found by running the real code.

The real easyaudio (mrpep/easyaudio at 12e6c0e, whose submodules pin habla-liaa/encodecmae at 4a3be20 and
nttcslab/byol-a at 3e65c92) was run with random weights built with its own classes (docs/real-parts.md):

- ``easyaudio.hub.get_model(name, device=...)`` never passes ``device`` on: it calls ``Wrapper(name)``, whose
  default device is ``cuda:0``, so on a machine without a GPU every model fails. :func:`build_model` builds the
  model through easyaudio's own wrapper classes (``easyaudio.hub.available_models``), which do take the device.
  (It also skips ``get_model``'s ``mkdir ckpts`` in the working directory.)
- BEATs' wrapper always lists the Hugging Face repository ``lpepino/beats_ckpts`` before loading, so an offline
  machine fails even with the checkpoint cached. :func:`beats_from_checkpoint` loads a local checkpoint (the
  released ``BEATs_*.pt``: a dict with ``cfg`` and ``model``) with easyaudio's own ``BEATs``/``BEATsConfig``
  classes and runs easyaudio's own extraction code on it.
- encodecmae before its v2 (the pinned 4a3be20) leaves ``torch.compile`` on (gin ``compile=True``): the first
  two input lengths compile the encoder (the second with dynamic shapes), 76-90 s each on this project's CPU.
  :func:`set_compile` sets the encoder's ``compile`` flag (off by default, as encodecmae v2's own ``load_model``
  does; on where a long run repays the compile, see docs/real-parts.md).
- What each encodecmae version returns differs (:data:`ENCODECMAE_BEHAVIOUR`); :func:`encodecmae_provenance`
  records the installed version and source commit in the manifest.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import torch

from wordreps.common.errors import UserError
from wordreps.common.versions import dist_version

# What encodecmae's extract_features_from_array(x, layer='all') returns, by version (read from the code of
# habla-liaa/encodecmae: 4a3be20 = the commit easyaudio pins, b5b866c = "v2 ready for inference", 2024-05-23).
ENCODECMAE_BEHAVIOUR = {
    "v1": ("encodecmae v1 (lpepino/encodecmae-<size> checkpoints; the commit easyaudio pins, 4a3be20): one entry per "
           "encoder block, each the block's normalised ResiDual stream; the last layer is BEFORE the final norm; "
           "audio runs in 4 s chunks and nothing is dropped, so T = ceil(N / 320), one frame more than the "
           "geometry's (N - 320) // 320 + 1 when N is not a multiple of 320 (that frame is never pooled); "
           "torch.compile on (off here unless asked for)"),
    "v2": ("encodecmae v2 (lpepino/encodecmae-v2 checkpoints, other model names; b5b866c and later): one entry per "
           "encoder block; the last layer is AFTER the final norm (x[0] + final_norm(x[1])); a last chunk of at "
           "most 2048 samples is dropped, so T can be a few frames short of the geometry (word frames are "
           "clipped); torch.compile off after loading"),
}


def build_model(hub: Any, name: str, device: torch.device, beats_checkpoint: str | None = None) -> Any:
    """easyaudio's wrapper object for ``name`` on ``device`` (see the module docstring for why not get_model)."""
    classes = getattr(hub, "available_models", None)
    wrapper = None
    if isinstance(classes, dict):
        wrapper = next((cls for prefix, cls in classes.items() if name.startswith(prefix)), None)
    if beats_checkpoint is not None:
        if not name.startswith("BEATs"):
            raise UserError(f"--beats_checkpoint is for BEATs models, not {name!r}; leave it out")
        if wrapper is None:
            raise UserError("the installed easyaudio has no BEATs wrapper in easyaudio.hub.available_models; "
                            "check the easyaudio version")
        return beats_from_checkpoint(wrapper, beats_checkpoint, device)
    if wrapper is not None:
        return wrapper(name, device=str(device))
    get_model = getattr(hub, "get_model", None)
    if get_model is None:
        raise UserError("the installed easyaudio has neither easyaudio.hub.available_models nor get_model; check "
                        "the easyaudio version")
    return get_model(name, device=str(device))


def beats_from_checkpoint(wrapper: type, path: str | os.PathLike, device: torch.device) -> Any:
    """A BEATs wrapper whose model comes from the local checkpoint ``path``, built with easyaudio's classes."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"BEATs checkpoint {path} does not exist; pass the BEATs_*.pt file (as released by "
                        "microsoft/unilm or cached from lpepino/beats_ckpts)")
    try:
        beats_module = importlib.import_module("easyaudio.models.beats.BEATs")
    except Exception as err:  # noqa: BLE001 - an easyaudio without its BEATs module
        raise UserError(f"easyaudio's BEATs classes cannot be imported ({type(err).__name__}: {err}); check the "
                        "easyaudio install") from err
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - pickle and zip errors of every kind
        raise UserError(f"BEATs checkpoint {path} cannot be read ({type(err).__name__}); pass a BEATs_*.pt file") from err
    if not isinstance(checkpoint, dict) or not {"cfg", "model"} <= set(checkpoint):
        raise UserError(f"BEATs checkpoint {path} is not a BEATs checkpoint (a dict with 'cfg' and 'model'); pass "
                        "a BEATs_*.pt file")
    cfg = beats_module.BEATsConfig(checkpoint["cfg"])
    model = beats_module.BEATs(cfg)
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as err:
        raise UserError(f"BEATs checkpoint {path} does not fit its own cfg ({' '.join(str(err).split())[:200]})") from err
    model.eval().to(device)
    # The wrapper's __init__ would list the Hugging Face repository first; give it the attributes that
    # __init__ sets (cfg, model, device, sr) and use its own extract_activations_from_array.
    wrapped = wrapper.__new__(wrapper)
    wrapped.cfg, wrapped.model, wrapped.device, wrapped.sr = cfg, model, str(device), 16000
    return wrapped


def set_compile(wrapped: Any, on: bool) -> bool | None:
    """Set encodecmae's transformer ``compile`` flags to ``on``; returns what the encoder's flag was (None when
    the model has no such flag, e.g. BEATs)."""
    inner = getattr(wrapped, "model", None)
    was = None
    for part in ("visible_encoder", "decoder"):
        module = getattr(inner, part, None)
        if isinstance(getattr(module, "compile", None), bool):
            if part == "visible_encoder":
                was = module.compile
            module.compile = on
    return was


def _git_head(start: Path) -> str | None:
    """The commit checked out in the git work tree holding ``start`` (reads .git files; no git needed)."""
    for folder in [start, *start.parents]:
        dot_git = folder / ".git"
        if dot_git.is_file():  # a submodule or worktree: "gitdir: <path>"
            text = dot_git.read_text().strip()
            if not text.startswith("gitdir:"):
                return None
            dot_git = (folder / text.split(":", 1)[1].strip()).resolve()
        if not dot_git.is_dir():
            continue
        head = (dot_git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head  # detached: the commit itself
        ref = head.split(":", 1)[1].strip()
        for git_dir in (dot_git, _common_dir(dot_git)):
            if (git_dir / ref).is_file():
                return (git_dir / ref).read_text().strip()
            packed = git_dir / "packed-refs"
            if packed.is_file():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + ref):
                        return line.split(" ", 1)[0]
        return None
    return None


def _common_dir(git_dir: Path) -> Path:
    common = git_dir / "commondir"
    return (git_dir / common.read_text().strip()).resolve() if common.is_file() else git_dir


def source_provenance(module: str) -> dict:
    """Version (package metadata) and source commit (when imported from a git checkout) of ``module``."""
    version = dist_version(module)
    try:
        mod = importlib.import_module(module)
        # easyaudio has no __init__.py: a namespace package has __path__ but no __file__
        files = [mod.__file__] if getattr(mod, "__file__", None) else [os.path.join(p, "x") for p in mod.__path__]
        where = Path(files[0]).resolve().parent if files else None
    except Exception:  # noqa: BLE001 - provenance is informative only
        where = None
    try:
        commit = _git_head(where) if where else None
    except OSError:
        commit = None
    return {"version": version, "commit": commit, "path": str(where) if where else None}


def encodecmae_api() -> str | None:
    """``"v1"`` (per-size checkpoints: easyaudio's names work), ``"v2"`` (lpepino/encodecmae-v2), or None."""
    try:
        hub = importlib.import_module("encodecmae.hub")
    except Exception:  # noqa: BLE001 - a stand-in or a broken install: not knowable
        return None
    if isinstance(getattr(hub, "models", None), dict):
        return "v1"
    if hasattr(hub, "get_available_models"):
        return "v2"
    return None


def encodecmae_provenance() -> dict:
    """For the manifest: which encodecmae produced the vectors, and what that version's layers are."""
    api = encodecmae_api()
    return {**source_provenance("encodecmae"), "api": api, "behaviour": ENCODECMAE_BEHAVIOUR.get(api)}
