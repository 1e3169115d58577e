"""Word pooling on the device: the mean of a word's frames (or sub-tokens), for every layer at once.

``pool_words`` builds one (B, W, T) averaging matrix per batch (weight 1/count on the word's frames) and
applies it to every layer with a batched matrix product in float32. Unlike cumulative sums it does not lose
precision on long utterances (wav2vec2-large has dimensions with values in the hundreds), and unlike
``index_add`` on CUDA it is deterministic. Cost: L x B x W x T x D multiply-adds, a few milliseconds on a GPU.
``pool_groups`` is the same product for positions labelled by group (a text model's sub-tokens by word).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from wordreps.common.errors import UserError
from wordreps.common.precision import exact_float32


def word_pooling_matrix(num_frames: Sequence[int], spans: Sequence[Sequence[tuple[int, int]]], max_frames: int,
                        device: torch.device | str, utt_ids: Sequence[str] | None = None,
                        words: Sequence[Sequence[str]] | None = None) -> torch.Tensor:
    """(B, Wmax, max_frames) float32: row w of item b averages frames first..min(last, num_frames[b]-1).

    A word whose first frame is at or past the frames the model produced is a :class:`UserError` naming the
    utterance and the word: it would otherwise get no frame at all.
    """
    batch = len(spans)
    wmax = max((len(s) for s in spans), default=0)
    first = np.zeros((batch, max(wmax, 1)), dtype=np.int64)
    last = np.full((batch, max(wmax, 1)), -1, dtype=np.int64)  # empty rows: no frame, weight 0
    for b, item_spans in enumerate(spans):
        if not item_spans:
            continue
        arr = np.asarray(item_spans, dtype=np.int64).reshape(-1, 2)
        n = int(num_frames[b])
        too_late = np.flatnonzero(arr[:, 0] >= n)
        if too_late.size:
            w = int(too_late[0])
            who = utt_ids[b] if utt_ids is not None else f"batch item {b}"
            text = f" ({words[b][w]!r})" if words is not None else ""
            raise UserError(f"utterance {who}, word #{w}{text} starts at frame {int(arr[w, 0])} but the model produced "
                            f"only {n} frames; the alignment JSON was made for another geometry or audio length: "
                            "re-create it for this model")
        first[b, : len(arr)] = arr[:, 0]
        last[b, : len(arr)] = np.minimum(arr[:, 1], n - 1)
    first_t = torch.from_numpy(first).to(device)
    last_t = torch.from_numpy(last).to(device)
    t = torch.arange(max_frames, device=device).view(1, 1, -1)
    inside = (t >= first_t.unsqueeze(-1)) & (t <= last_t.unsqueeze(-1))
    counts = inside.sum(-1, keepdim=True).clamp_min(1)
    return inside.to(torch.float32) / counts.to(torch.float32)


def pool_words(hidden: torch.Tensor | Sequence[torch.Tensor], num_frames: Sequence[int],
               spans: Sequence[Sequence[tuple[int, int]]], *, utt_ids: Sequence[str] | None = None,
               words: Sequence[Sequence[str]] | None = None) -> list[torch.Tensor]:
    """Mean of each word's frames for every layer; one (L, W_b, D) float32 tensor per item, on the device.

    ``hidden``: (L, B, T, D) or a list of L tensors (B, T, D) (any float dtype; averaged in float32).
    ``num_frames``: frames the model actually produced for each item (padding excluded).
    ``spans``: per item, per word, (first_frame, last_frame) inclusive; ``last`` is clipped to num_frames-1.
    """
    layers = list(hidden) if not isinstance(hidden, torch.Tensor) else list(hidden.unbind(0))
    if not layers:
        raise ValueError("pool_words: no layers")
    batch, max_frames, dim = layers[0].shape
    if batch != len(spans) or batch != len(num_frames):
        raise ValueError(f"pool_words: {batch} items in hidden, {len(spans)} span lists, {len(num_frames)} lengths")
    device = layers[0].device
    weights = word_pooling_matrix(num_frames, spans, max_frames, device, utt_ids, words)  # (B, W, T)
    wmax = weights.shape[1]
    pooled = _apply_weights(weights, layers)  # (L, B, W, D)
    counts = [len(s) for s in spans]
    if wmax == 0:
        return [pooled.new_zeros((len(layers), 0, dim)) for _ in counts]
    # gather the valid rows of all items into one (L, sum W, D) block, then split: one host copy later
    mask = torch.zeros((batch, wmax), dtype=torch.bool)
    for b, c in enumerate(counts):
        mask[b, :c] = True
    flat = pooled[:, mask.to(device)]  # (L, sum W, D)
    return list(torch.split(flat, counts, dim=1))


def pooled_to_numpy(pooled: Sequence[torch.Tensor]) -> list[np.ndarray]:
    """One device->host copy for a whole batch; returns float32 arrays (L, W_b, D)."""
    if not pooled:
        return []
    counts = [p.shape[1] for p in pooled]
    host = torch.cat(list(pooled), dim=1).to("cpu", torch.float32).numpy()
    out, start = [], 0
    for c in counts:
        out.append(np.ascontiguousarray(host[:, start:start + c]))
        start += c
    return out


def pool_utterances(hidden: torch.Tensor | Sequence[torch.Tensor], num_frames: Sequence[int],
                    utterances: Sequence) -> list[np.ndarray]:
    """:func:`pool_words` over the aligned words of ``utterances`` (one per batch item), then
    :func:`pooled_to_numpy`: one float32 (L, W_b, D) array per utterance."""
    spans = [[(w.first_frame, w.last_frame) for w in u.words] for u in utterances]
    pooled = pool_words(hidden, num_frames, spans, utt_ids=[u.utt_id for u in utterances],
                        words=[[w.word for w in u.words] for u in utterances])
    return pooled_to_numpy(pooled)


def _apply_weights(weights: torch.Tensor, layers: Sequence[torch.Tensor]) -> torch.Tensor:
    """(L, B, W, D) float32: one (B, W, T) x (B, T, D) product per layer.

    Float32 accumulation, never TF32 or bfloat16 passes (precision matters before float16 storage), and
    autocast off: it would run the product in the model's lower precision.
    """
    device = layers[0].device
    with exact_float32(), torch.autocast(device.type, enabled=False):
        return torch.stack([torch.bmm(weights, h.to(torch.float32)) for h in layers])


def group_pooling_matrix(groups: torch.Tensor, num_groups: int) -> torch.Tensor:
    """(B, G, T) float32: row g of item b averages the positions t with ``groups[b, t] == g`` (-1: no group).

    A group with no position gets a row of zeros (the caller knows which groups exist).
    """
    g = torch.arange(num_groups, device=groups.device).view(1, -1, 1)
    inside = groups.unsqueeze(1) == g  # (B, G, T)
    counts = inside.sum(-1, keepdim=True).clamp_min(1)
    return inside.to(torch.float32) / counts.to(torch.float32)


def pool_groups(hidden: torch.Tensor | Sequence[torch.Tensor], groups: torch.Tensor, num_groups: int) -> torch.Tensor:
    """Mean of each group's positions for every layer: (L, B, G, D) float32, deterministic on every device.

    ``hidden``: (L, B, T, D) or a list of L tensors (B, T, D) of any float dtype; ``groups``: (B, T) integer
    labels in [0, num_groups) or -1 for positions that belong to no group (padding, special tokens).
    """
    layers = list(hidden) if not isinstance(hidden, torch.Tensor) else list(hidden.unbind(0))
    if not layers:
        raise ValueError("pool_groups: no layers")
    if tuple(groups.shape) != tuple(layers[0].shape[:2]):
        raise ValueError(f"pool_groups: groups of shape {tuple(groups.shape)} for hidden states "
                         f"{tuple(layers[0].shape)}")
    weights = group_pooling_matrix(groups.to(layers[0].device), num_groups)
    return _apply_weights(weights, layers)
