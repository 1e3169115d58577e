"""The one-page summary of a run: what ran, every measure's heatmaps and the ASIF retrieval table, in Markdown."""
from __future__ import annotations

import json
import os
from pathlib import Path

from wordreps.alignments.utterances import unit_noun
from wordreps.common.atomic import write_text_atomic


def _rel(path: Path, start: Path) -> str:
    return os.path.relpath(path, start).replace(os.sep, "/")


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_summary(cfg, records: list[dict], seconds: float) -> Path:
    """Write ``<out_root>/summary.md`` from the files the run left; returns its path."""
    from wordreps.pipeline.runner import unit_models

    root = Path(cfg.out_root)
    out = root / "summary.md"
    lines = ["# Layer-wise comparison: run summary", ""]
    units = getattr(cfg, "units", "words")
    noun = unit_noun(units)
    lines += [f"Unit: **{units}** (an occurrence is a {noun}: an utterance and a position in its {units} tier"
              + ("; text models have no phones, so only audio models are compared" if units == "phones" else "")
              + ").", ""]
    keys = _load(Path(cfg.keys_path))
    if keys:
        lines += [f"Shared {noun} occurrences: **{len(keys['rows'])}** (`{cfg.keys_path}`), models: "
                  + ", ".join(f"`{m}`" for m in keys["models"]) + ".", ""]
    lines += ["## Models", "", f"| folder | kind | model | layers | dim | {units} without a vector |",
              "|---|---|---|---|---|---|"]
    # each manifest once: a full run's hold every utterance's word list (megabytes per model)
    models = unit_models(cfg)  # text models have no phones: not in a phones run's table
    state = {spec.slug: _embeddings_state(cfg.embeddings_dir / spec.slug) for spec in models}
    for spec in models:
        manifest, missing = state[spec.slug]
        if manifest is None:
            lines.append(f"| {spec.slug} | {spec.kind} | `{spec.model}` | not run | | |")
            continue
        lines.append(f"| {spec.slug} | {spec.kind} | `{manifest['model']}` | {manifest['num_layers']} | "
                     f"{manifest['dim']} | {missing} |")
    for spec in models:
        lines += too_short_lines(spec.slug, state[spec.slug][0])
    for spec in models:
        if spec.kind == "glove":
            lines += glove_oov_lines(spec.slug, state[spec.slug][0])
    from wordreps.analysis.measures import measure

    titles = ", ".join(f"{measure(m).title} ({measure(m).reference})" for m in cfg.measures)
    lines += ["", "## Every pair of layers", "",
              f"{titles} on the shared occurrences; one heatmap per model pair and measure (rows: first model's "
              "layers), and one layer-correspondence plot per pair: for each layer of the first model, the "
              "best-matching layer of the second under each measure. Definitions: docs/measures.md.", ""]
    first = cfg.measures[0]
    cka_root = cfg.results_dir / "cka"
    for folder in sorted(p for p in cka_root.glob("*__vs__*") if p.is_dir()):
        res = _load(folder / f"{first}.json")
        if res is None:
            continue
        cells = [(v, i, j) for i, row in enumerate(res["values"]) for j, v in enumerate(row) if v is not None]
        if cells:
            top, i, j = max(cells)
            best = (f"highest {measure(first).title} {top:.3f} at layers ({res['model1']['layers'][i]}, "
                    f"{res['model2']['layers'][j]})")
        else:
            best = f"{measure(first).title} undefined everywhere"
        lines += [f"### {res['model1']['name']} vs {res['model2']['name']}", "",
                  f"n = {res['num_rows']}; {best}. "
                  f"Files: `{_rel(folder, root)}/{{{','.join(cfg.measures)}}}.{{json,csv,png}}`", ""]
        lines += [f"- warning: {w}" for w in res.get("warnings", [])] + ([""] if res.get("warnings") else [])
        empty = []
        for metric in cfg.measures:
            png = folder / f"{metric}.png"
            if png.is_file():
                lines.append(f"![{measure(metric).title}]({_rel(png, root)})")
            values = ((res if metric == first else _load(folder / f"{metric}.json")) or {}).get("values") or []
            if values and all(v is None for row in values for v in row):
                empty.append(measure(metric).title)
        if (folder / "correspondence.png").is_file():
            lines.append(f"![layer correspondence]({_rel(folder / 'correspondence.png', root)})")
        lines.append("")
        if empty:
            lines += [f"No value under {', '.join(empty)}: too few rows (n = {res['num_rows']}) for the layers' "
                      "dimensions, where canonical correlations are all 1 by construction (docs/measures.md).", ""]
    asif_root = cfg.results_dir / "asif"
    rows = []
    for folder in sorted(p for p in asif_root.glob("*") if p.is_dir()):
        summ = _load(folder / "summary.json")
        if summ is None:
            continue
        best = {}
        for r in summ["results"]:
            if r["direction"] not in best or r["top1"] > best[r["direction"]]["top1"]:
                best[r["direction"]] = r
        inputs = summ.get("inputs", {})
        for direction, r in best.items():
            rows.append(f"| {folder.name} | {_layer_of(inputs, 1)} / {_layer_of(inputs, 2)} | {direction} | "
                        f"{r['k']} | {r['p']:g} | {r['top1']:.3f} | {r['top5']:.3f} | {r['mrr']:.3f} | "
                        f"{r['chance_top1']:.3f} | {r['num_queries']} |")
    if rows:
        lines += ["## ASIF retrieval (Norelli et al., 2023)", "",
                  f"Audio layer and text layer: the pair with the highest {measure(cfg.pair_measure).title}. Best (k, p) of the sweep per "
                  "direction; accuracy by word identity; chance is the same ranking with random scores.", "",
                  "| pair | layers (audio / text) | direction | k | p | top-1 | top-5 | MRR | chance top-1 | queries |",
                  "|---|---|---|---|---|---|---|---|---|---|", *rows, ""]
        for folder in sorted(p for p in asif_root.glob("*") if (p / "accuracy_vs_k.png").is_file()):
            lines.append(f"![ASIF {folder.name}]({_rel(folder / 'accuracy_vs_k.png', root)})")
        lines.append("")
    lines += ["## Steps", "", "| step | status | seconds | command |", "|---|---|---|---|"]
    for rec in records:
        lines.append(f"| {rec['name']} | {rec['status']} | {rec['seconds']:.1f} | `{rec['command']}` |")
    lines += ["", f"Total wall time of this invocation: {seconds:.1f} s.", ""]
    write_text_atomic(out, "\n".join(lines))
    return out


def too_short_lines(slug: str, manifest: dict | None) -> list[str]:
    """What ``--skip_too_short`` left out of a model's embeddings (its manifest's record), or nothing."""
    skipped = (manifest or {}).get("skipped_too_short")
    if not skipped:
        return []
    ids = sorted(skipped["utterances"])
    shown = ", ".join(f"`{u}`" for u in ids[:5]) + (", ..." if len(ids) > 5 else "")
    return ["", f"`{slug}` skipped **{len(ids)}** utterance(s) shorter than its receptive field "
                f"({skipped['min_samples']} samples, `--skip_too_short`): {shown}."]


def glove_oov_losses(manifest: dict) -> dict[str, int] | None:
    """Occurrences without a vector under each ``--oov`` choice, from a GloVe manifest (None if it has no
    record of the choice): ``missing`` loses every occurrence of a word the file lacks, ``compose`` only
    those whose pieces (GloVe's tokenizer's split) do not all have a vector."""
    describe = manifest.get("describe", {})
    if "oov" not in describe or describe.get("oov_words") is None:
        return None
    oov = set(describe["oov_words"])
    composable = set(describe.get("composable_oov_words", {}))
    counts = {"total": 0, "missing": 0, "compose": 0}
    for utt in manifest.get("utterances", {}).values():
        for word in utt["words"]:
            key = word.lower()
            counts["total"] += 1
            counts["missing"] += key in oov
            counts["compose"] += key in oov and key not in composable
    return counts


def glove_oov_lines(slug: str, manifest: dict | None) -> list[str]:
    counts = None if manifest is None else glove_oov_losses(manifest)
    if counts is None:
        return []
    used = manifest["describe"]["oov"]
    examples = ", ".join(f"`{w}`" for w in sorted(manifest["describe"].get("composable_oov_words", {}))[:6])
    return ["", f"GloVe (`{slug}`, run with `--oov {used}`): of {counts['total']} occurrences, "
                f"`--oov missing` (exact lookup) leaves **{counts['missing']}** without a vector, "
                f"`--oov compose` (mean of GloVe's own split, e.g. i'm -> i + 'm) leaves **{counts['compose']}**"
                + (f" (composable: {examples})" if examples else "") + "."]


def _layer_of(inputs: dict, which: int) -> str:
    path = str(inputs.get(f"path_layer{which}", inputs.get(f"path{which}", "")))
    name = Path(path).stem
    return name.replace("layer_", "") if name.startswith("layer_") else name or "?"


def _embeddings_state(folder: Path) -> tuple[dict | None, int]:
    """(a model's manifest, or None when it has none; how many occurrences have no vector)."""
    from wordreps.common.errors import UserError
    from wordreps.embeddings.store import EmbeddingSet

    try:
        emb = EmbeddingSet.open(folder)
        return emb.manifest, sum(len(emb.missing(u)) for u in emb.done_ids())
    except UserError:
        # not run, or a folder the store refuses: show what the manifest says, without a count
        return _load(folder / "manifest.json"), 0
