"""The reproduction runner: every thesis step in order, each skipped when its outputs are complete.

Each step is one of the stage scripts with the same flags a user would type, so the runner is also a
worked example of the toolkit's command line. Steps run in this process by default (torch and
transformers are imported once, which is most of a small run's time) or each in a subprocess with
``isolate=True`` (memory is given back between models on a full-size run).
"""
from __future__ import annotations

import json
import os
import runpy
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from wordreps.common.errors import UserError

REPO = Path(__file__).resolve().parents[1]

# Kinds of model the runner knows how to extract, and the script each one goes through.
SCRIPTS = {
    "glove": "embeddings/glove_embedding.py",
    "text": "embeddings/nlp_embedding.py",
    "speech": "embeddings/speech_embedding.py",
    "audio": "embeddings/audio_embeddings.py",
}
MODALITY = {"glove": "text", "text": "text", "speech": "audio", "audio": "audio"}
EASYAUDIO_PREFIXES = ("encodecmae", "beats")


@dataclass
class ModelSpec:
    """One model of the run: ``kind`` (glove|text|speech|audio), the name or path the script gets,
    and the folder name (slug) its outputs live under."""
    kind: str
    model: str
    slug: str
    extra_args: list[str] = field(default_factory=list)

    @property
    def modality(self) -> str:
        return MODALITY[self.kind]

    @property
    def needs_easyaudio(self) -> bool:
        return self.kind == "audio" and self.model.lower().startswith(EASYAUDIO_PREFIXES)


def guess_kind(model: str) -> str:
    """The kind of a bare model name: glove, an s3prl upstream, an easyaudio/AST audio model, else text."""
    low = model.lower()
    if low == "glove" or low.endswith((".txt", ".txt.gz", ".bin", ".kv")):
        return "glove"
    if low.startswith(EASYAUDIO_PREFIXES) or "ast" in Path(low).name.split("-"):
        return "audio"
    config = Path(model) / "config.json"
    if config.is_file():
        model_type = json.loads(config.read_text()).get("model_type", "")
        if model_type in {"wav2vec2", "hubert", "wavlm", "data2vec-audio"}:
            return "speech"
        if model_type == "audio-spectrogram-transformer":
            return "audio"
        return "text"
    if _is_s3prl_name(model) or any(k in low for k in ("wav2vec2", "hubert", "wavlm", "data2vec-audio")):
        return "speech"
    return "text"


def _is_s3prl_name(name: str) -> bool:
    try:
        import s3prl.hub as hub
    except Exception:
        return False
    return name in dir(hub)


def parse_model(text: str) -> ModelSpec:
    """``name``, ``kind:name`` or ``kind:name@slug`` (kind one of glove, text, speech, audio)."""
    kind, _, rest = text.partition(":") if text.split(":", 1)[0] in SCRIPTS else ("", "", text)
    model, _, slug = rest.partition("@")
    kind = kind or guess_kind(model)
    if not slug:
        slug = "glove" if kind == "glove" else _slug(model)
    return ModelSpec(kind=kind, model=model, slug=slug)


def _slug(model: str) -> str:
    path = Path(model)
    if path.exists():
        return path.resolve().name
    return model.replace("/", "__")


@dataclass
class Step:
    name: str
    script: str
    args: list[str]
    outputs: list[Path]
    done: Callable[[], bool] | None = None

    def complete(self) -> bool:
        if self.done is not None:
            return self.done()
        return bool(self.outputs) and all(p.exists() for p in self.outputs)

    def command(self) -> str:
        return " ".join(["python3", self.script] + [shlex.quote(a) for a in self.args])


def run_step(step: Step, isolate: bool, log: Callable[[str], None]) -> float:
    """Run one step; returns seconds taken. A failing step raises UserError naming the command."""
    log(f"[run ] {step.name}: {step.command()}")
    start = time.perf_counter()
    if isolate:
        code = subprocess.call([sys.executable, step.script, *step.args], cwd=REPO)
    else:
        code = _run_in_process(step.script, step.args)
    elapsed = time.perf_counter() - start
    if code != 0:
        raise UserError(f"step '{step.name}' failed (exit {code}) running: {step.command()}; "
                        "fix what its error line says and run the same command again: finished steps are skipped")
    return elapsed


def _run_in_process(script: str, args: list[str]) -> int:
    saved = sys.argv
    sys.argv = [script, *args]
    try:
        runpy.run_path(str(REPO / script), run_name="__main__")
    except SystemExit as stop:
        if isinstance(stop.code, int):
            return stop.code
        return 0 if stop.code is None else 1
    finally:
        sys.argv = saved
    return 0


def env_has_easyaudio() -> bool:
    try:
        import easyaudio  # noqa: F401
    except Exception:
        return False
    return True


def relpath(path: Path) -> str:
    try:
        return os.path.relpath(path, REPO)
    except ValueError:
        return str(path)
