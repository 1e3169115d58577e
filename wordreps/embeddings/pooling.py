"""Word pooling on the device: the mean of a word's frames, for every layer at once.

``pool_words`` builds one (B, W, T) averaging matrix per batch (weight 1/count on the word's frames) and
applies it to every layer with a batched matrix product in float32. Unlike cumulative sums it does not lose
precision on long utterances (wav2vec2-large has dimensions with values in the hundreds), and unlike
``index_add`` on CUDA it is deterministic. Cost: L x B x W x T x D multiply-adds, a few milliseconds on a GPU.
"""
from __future__ import annotations

import contextlib
from typing import Sequence

import numpy as np
import torch

from wordreps.common.errors import UserError


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
    # one (B, W, D) product per layer; float32 accumulation, never TF32 (precision matters before fp16 storage)
    with _no_tf32(), torch.autocast(device.type, enabled=False):  # autocast would run bmm in bf16
        pooled = torch.stack([torch.bmm(weights, h.to(torch.float32)) for h in layers])  # (L, B, W, D)
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


@contextlib.contextmanager
def _no_tf32():
    if not torch.cuda.is_available():
        yield
        return
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old


def autocast_for(device: torch.device | str):
    """bf16 autocast on CUDA (fp16 where bf16 is unsupported); a no-op (fp32) on CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()
