"""Hugging Face text encoders (BERT, RoBERTa, MiniLM, ...): the ``hf-text`` family.

The backend reads only the alignment's word lists (frames are ignored), so every word occurrence of the
alignment JSON gets a row, in the utterance's word order.

Hugging Face text encoders (``family="hf-text"``)
    The utterance's own words are given to the (fast) tokenizer as pre-split words
    (``is_split_into_words=True``) and ``word_ids()`` maps every sub-token back to its word, so a word's
    vector is exactly the mean of its own sub-tokens' hidden states, per layer. Layer 0 is the embeddings
    output (``hidden_states[0]``), layer i the output of block i. Byte-level BPE tokenizers (RoBERTa,
    GPT-2 style) are loaded with ``add_prefix_space=True``: each pre-split word is then encoded as
    ``" word"``, which is how the model saw words inside running text (and which transformers requires
    for pre-split input).

    Long utterances are never cut. When an utterance's sub-tokens (plus the model's special tokens) do not
    fit the model's limit (the smallest of ``max_position_embeddings`` minus RoBERTa's padding offset,
    ``tokenizer.model_max_length`` and ``max_tokens``), it is covered by overlapping windows made of whole
    words: each window holds as many whole words as fit, and the next one starts at the first word at least
    ``stride`` sub-tokens (default: half a window) after the previous start. Every word then takes all its
    vectors from the one window in which it is most central, i.e. where the smaller of its context on a
    cut side (sub-tokens between it and a window edge that is not the utterance's own start or end) is
    largest; ties go to the earlier window. An utterance that fits is one window, identical to a plain
    run.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from wordreps.common.errors import UserError, one_line
from wordreps.embeddings.base import Backend, BatchItem, Utterance


def plan_windows(word_lengths: Sequence[int], max_tokens: int, stride: int) -> list[tuple[int, int]]:
    """Overlapping windows of whole words, as ``(first_word, end_word)`` half-open ranges.

    ``word_lengths[i]`` = sub-tokens of word i; a window holds at most ``max_tokens`` sub-tokens; each next
    window starts at the first word whose first sub-token is at least ``stride`` sub-tokens after the previous
    window's start, but never after the previous window's end (no word is skipped) and late enough that it
    reaches at least one word further (no window is a subset of the previous one).
    """
    n = len(word_lengths)
    offsets = np.concatenate([[0], np.cumsum(word_lengths)]).astype(int)
    if offsets[-1] <= max_tokens:
        return [(0, n)]
    windows: list[tuple[int, int]] = []
    s = 0
    while True:
        e = s
        while e < n and offsets[e + 1] - offsets[s] <= max_tokens:
            e += 1
        if e == s:
            raise ValueError(f"word {s} alone has {word_lengths[s]} sub-tokens, more than a window's {max_tokens}")
        windows.append((s, e))
        if e == n:
            return windows
        target = offsets[s] + stride
        nxt = next((j for j in range(s + 1, e + 1) if offsets[j] >= target), e)
        # the next window must reach past this one (hold word e), or it would be a useless subset of it
        while nxt < e and offsets[e + 1] - offsets[nxt] > max_tokens:
            nxt += 1
        s = nxt


def assign_windows(word_lengths: Sequence[int], windows: Sequence[tuple[int, int]]) -> list[int]:
    """For each word, the index of the window where it is most central (see the module docstring)."""
    n = len(word_lengths)
    offsets = np.concatenate([[0], np.cumsum(word_lengths)]).astype(int)
    best = [-1] * n
    best_score = [-1.0] * n
    for k, (s, e) in enumerate(windows):
        lo, hi = offsets[s], offsets[e]
        for i in range(s, e):
            left = math.inf if s == 0 else offsets[i] - lo
            right = math.inf if e == n else hi - offsets[i + 1]
            score = min(left, right)
            if score > best_score[i]:
                best[i], best_score[i] = k, score
    return best


@dataclass
class _Tokenized:
    word_lengths: list[int]   # sub-tokens per word
    input_ids: list[int]      # whole utterance with special tokens
    word_ids: list[int]       # per position of input_ids: word index, -1 for special tokens


def _is_local_path(name: str) -> bool:
    return os.path.isabs(name) or name.startswith((".", "~")) or os.path.exists(name)


def _offline_error(name: str, err: Exception) -> UserError:
    detail = one_line(" ".join(str(err).split()).split(". ")[0])  # the hub's first sentence: the rest is advice
    return UserError(f"{name} is not a local model folder and could not be fetched from the Hugging Face hub "
                     f"(offline?); pass a folder with config.json or a hub name ({type(err).__name__}: {detail})")


def _weights_sha256(folder: str) -> dict[str, str]:
    from wordreps.common.hashing import sha256_file

    out = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith((".safetensors", ".bin")) and os.path.isfile(os.path.join(folder, name)):
            out[name] = sha256_file(os.path.join(folder, name))
    return out


class HFTextBackend(Backend):
    """A Hugging Face text encoder; word vector = mean of the word's sub-token hidden states, per layer."""

    family = "hf-text"
    needs_audio = False
    words_can_be_missing = False  # every word has at least one sub-token (checked when tokenizing)

    def __init__(self, model: str, device: str = "cpu", *, max_tokens: int | None = None,
                 stride: int | None = None, revision: str | None = None, precision: str = "auto") -> None:
        import torch
        import transformers
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        from wordreps.common.devices import resolve_device
        from wordreps.common.precision import cast_matmul_weights, resolve_precision

        self.model_name = model
        self.device = resolve_device(str(device))
        self.precision = resolve_precision(precision, self.device)  # before the (slow) model load
        local = _is_local_path(model)
        if local:
            if not os.path.isdir(model):
                raise UserError(f"model path {model} does not exist or is not a folder; pass a Hugging Face model "
                                "folder (with config.json) or a hub name such as bert-base-uncased")
            if not os.path.isfile(os.path.join(model, "config.json")):
                raise UserError(f"model folder {model} has no config.json, so it is not a Hugging Face model "
                                "folder; pass the folder that save_pretrained wrote, or a hub name")
        try:
            config = AutoConfig.from_pretrained(model, revision=revision)
        except OSError as err:
            raise _offline_error(model, err) from err
        except (ValueError, KeyError) as err:
            raise UserError(f"{model} is not a model transformers can load ({one_line(err)}); "
                            "pass a Hugging Face text encoder folder or hub name") from err
        if getattr(config, "is_encoder_decoder", False):
            raise UserError(f"{model} is an encoder-decoder model ({config.model_type}); only text encoders "
                            "(BERT, RoBERTa, MiniLM, ...) are supported")
        try:
            # add_prefix_space only changes byte-level BPE pre-tokenizers (RoBERTa, GPT-2 style); others ignore it
            tokenizer = AutoTokenizer.from_pretrained(model, revision=revision, use_fast=True, add_prefix_space=True)
        except OSError as err:
            raise _offline_error(model, err) from err
        except (ValueError, KeyError, TypeError) as err:
            raise UserError(f"the tokenizer of {model} cannot be loaded ({one_line(err)})") from err
        if not getattr(tokenizer, "is_fast", False):
            raise UserError(f"{model} has no fast (Rust) tokenizer, which is needed to map sub-tokens to words; "
                            "pass a model folder with tokenizer.json")
        try:
            net = AutoModel.from_pretrained(model, revision=revision, config=config)
        except OSError as err:
            raise _offline_error(model, err) from err
        except (ValueError, KeyError) as err:
            raise UserError(f"{model} has no text encoder transformers can load "
                            f"({one_line(err)})") from err
        net.eval().to(self.device)
        cast_matmul_weights(net, self.precision)
        self.config, self.tokenizer, self.model = config, tokenizer, net
        self._torch = torch

        num_hidden = getattr(config, "num_hidden_layers", None)
        if num_hidden is None:
            raise UserError(f"{model}: its config has no num_hidden_layers, so it is not a supported encoder")
        self.num_layers = int(num_hidden) + 1
        self.layer_names = ["embeddings"] + [f"layer_{i}" for i in range(1, self.num_layers)]
        self.dim = int(config.hidden_size)

        # sequence limit in tokens, special tokens included
        limits = []
        mpe = getattr(config, "max_position_embeddings", None)
        if mpe:
            embeddings = getattr(net, "embeddings", None)
            # RoBERTa-style embeddings number positions from padding_idx + 1 (514 positions -> 512 tokens)
            offset = int(getattr(embeddings, "padding_idx", -1)) + 1 if hasattr(embeddings, "padding_idx") else 0
            limits.append(int(mpe) - offset)
        tml = getattr(tokenizer, "model_max_length", None)
        if tml and tml < 1_000_000:
            limits.append(int(tml))
        if max_tokens is not None:
            limits.append(int(max_tokens))
        if not limits:
            limits.append(512)
        self.max_len = min(limits)
        self.num_special = int(tokenizer.num_special_tokens_to_add(pair=False))
        self.window_tokens = self.max_len - self.num_special
        if self.window_tokens < 1:
            raise UserError(f"a window of {self.max_len} tokens leaves no room next to the model's {self.num_special} "
                            "special tokens; raise --max_tokens")
        self.stride = int(stride) if stride else max(1, self.window_tokens // 2)
        if self.stride > self.window_tokens:
            raise UserError(f"--window_stride {self.stride} is larger than a window's {self.window_tokens} "
                            "sub-tokens, which would skip words; use a smaller stride")
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad) if pad is not None else 0
        self._tok_cache: dict[str, _Tokenized] = {}
        self._versions = {"transformers": transformers.__version__, "torch": torch.__version__}
        self._local_path = os.path.abspath(model) if local else None
        self._weights = _weights_sha256(model) if local else None

    # ------------------------------------------------------------------------------------------ tokens

    def _tokenize(self, words: Sequence[str]) -> tuple[list[int], list[int]]:
        enc = self.tokenizer(list(words), is_split_into_words=True, add_special_tokens=True, verbose=False)
        ids = list(enc["input_ids"])
        wids = [-1 if w is None else int(w) for w in enc.word_ids()]
        return ids, wids

    def tokenize_utterance(self, utterance: Utterance) -> _Tokenized:
        cached = self._tok_cache.get(utterance.utt_id)
        if cached is not None:
            return cached
        words = [w.word for w in utterance.words]
        ids, wids = self._tokenize(words) if words else ([], [])
        lengths = [0] * len(words)
        for w in wids:
            if w >= 0:
                lengths[w] += 1
        empty = [i for i, n in enumerate(lengths) if n == 0]
        if empty:
            i = empty[0]
            raise UserError(f"utterance {utterance.utt_id}, word #{i} ({words[i]!r}): the tokenizer of "
                            f"{self.model_name} turns it into no sub-token at all, so it has no vector; fix the "
                            "word in the alignment JSON or use another model")
        tok = _Tokenized(lengths, ids, wids)
        self._tok_cache[utterance.utt_id] = tok
        return tok

    def windows_for(self, utterance: Utterance) -> list[tuple[list[int], list[int]]]:
        """``(input_ids, slot per position)`` per window; slot = word position whose vector the token feeds, or -1."""
        tok = self.tokenize_utterance(utterance)
        if not tok.word_lengths:
            return []
        try:
            windows = plan_windows(tok.word_lengths, self.window_tokens, self.stride)
        except ValueError as err:
            raise UserError(f"utterance {utterance.utt_id}: {err}; raise --max_tokens") from err
        if len(windows) == 1:
            return [(tok.input_ids, tok.word_ids)]
        owner = assign_windows(tok.word_lengths, windows)
        words = [w.word for w in utterance.words]
        out = []
        for k, (s, e) in enumerate(windows):
            ids, wids = self._tokenize(words[s:e])
            slots = [-1 if w < 0 or owner[s + w] != k else s + w for w in wids]
            out.append((ids, slots))
        return out

    def cost(self, utterance: Utterance) -> float:
        """Sub-tokens fed to the model (special tokens and window overlaps included)."""
        tok = self.tokenize_utterance(utterance)
        if not tok.word_lengths:
            return 0.0
        total = sum(tok.word_lengths)
        if total <= self.window_tokens:
            return float(len(tok.input_ids))
        try:
            windows = plan_windows(tok.word_lengths, self.window_tokens, self.stride)
        except ValueError:
            return float(total + self.num_special)
        offsets = np.concatenate([[0], np.cumsum(tok.word_lengths)])
        return float(sum(offsets[e] - offsets[s] + self.num_special for s, e in windows))

    # ------------------------------------------------------------------------------------------- model

    def embed(self, batch: list[BatchItem]) -> list[np.ndarray]:
        seqs: list[list[int]] = []
        slots: list[list[int]] = []
        word_base: list[int] = []
        total_words = 0
        for item in batch:
            word_base.append(total_words)
            for ids, sl in self.windows_for(item.utterance):
                seqs.append(ids)
                slots.append([-1 if s < 0 else total_words + s for s in sl])
            total_words += len(item.utterance.words)
            self._tok_cache.pop(item.utterance.utt_id, None)
        if seqs:
            result = self._forward_pool(seqs, slots, total_words)
        else:  # only utterances without words: nothing to run, (layers, 0, dim)
            result = np.full((self.num_layers, total_words, self.dim), np.nan, dtype=np.float32)
        out = []
        for item, base in zip(batch, word_base):
            n = len(item.utterance.words)
            out.append(np.ascontiguousarray(result[:, base:base + n]))
        return out

    def _forward_pool(self, seqs: list[list[int]], slots: list[list[int]], total_words: int) -> np.ndarray:
        """(layers, total_words, dim) float32: each word's mean over the sub-tokens it owns, NaN for a word with none.

        Pooling is one averaging matrix per window applied with a float32 batched product
        (``pooling.pool_groups``), the speech path's deterministic pooling, never ``index_add_`` (whose CUDA
        kernel adds in an order that changes from run to run).
        """
        from wordreps.common.precision import autocast
        from wordreps.embeddings.pooling import pool_groups

        torch = self._torch
        dev = self.device
        # longest first keeps similar lengths together should the caller's batch be large
        order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
        width = len(seqs[order[0]])
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        # per window: its words (global slots) in order of first sub-token, and each position's local word index
        local = np.full((len(seqs), width), -1, dtype=np.int64)
        owners: list[list[int]] = []
        for row, i in enumerate(order):
            n = len(seqs[i])
            ids[row, :n] = torch.tensor(seqs[i], dtype=torch.long)
            mask[row, :n] = 1
            words_here: dict[int, int] = {}
            for t, slot in enumerate(slots[i]):
                if slot >= 0:
                    local[row, t] = words_here.setdefault(slot, len(words_here))
            owners.append(list(words_here))
        num_groups = max((len(o) for o in owners), default=0)
        means = np.full((self.num_layers, total_words, self.dim), np.nan, dtype=np.float32)
        with torch.inference_mode():
            with autocast(dev, self.precision):
                out = self.model(input_ids=ids.to(dev), attention_mask=mask.to(dev), output_hidden_states=True,
                                 return_dict=True)
            hidden = out.hidden_states
            if hidden is None or len(hidden) != self.num_layers:
                raise UserError(f"{self.model_name} returned {0 if hidden is None else len(hidden)} hidden states, "
                                f"expected {self.num_layers}; it is not a supported encoder")
            if num_groups == 0:
                return means
            pooled = pool_groups(hidden, torch.from_numpy(local), num_groups)  # (L, windows, G, D) float32
            # the rows of every window's own words, gathered on the device: one host copy per batch
            rows = torch.tensor([(r, g) for r, o in enumerate(owners) for g in range(len(o))], dtype=torch.long)
            flat = pooled[:, rows[:, 0].to(dev), rows[:, 1].to(dev)].cpu().numpy()  # (L, owned words, D)
        # every word is owned by exactly one window, so each target row is written once; a word whose text
        # the tokenizer drops entirely (e.g. only control characters) keeps its NaN row: it has no vector
        means[:, [w for o in owners for w in o]] = flat
        return means

    def _pre_tokenizer(self) -> dict | None:
        """Type (and add_prefix_space, for byte-level BPE) of the tokenizer's pre-tokenizer, for the manifest."""
        try:
            pre = json.loads(self.tokenizer.backend_tokenizer.to_str()).get("pre_tokenizer") or {}
        except Exception:  # noqa: BLE001 - informative only
            return None
        parts = pre.get("pretokenizers", [pre])
        return {"type": pre.get("type"),
                "add_prefix_space": any(bool(p.get("add_prefix_space")) for p in parts if isinstance(p, dict))}

    def describe(self) -> dict:
        return {
            "model_id": self.model_name,
            "revision": getattr(self.config, "_commit_hash", None) or self._local_path,
            "local_path": self._local_path,
            "weights_sha256": self._weights,
            "model_type": self.config.model_type,
            "tokenizer": type(self.tokenizer).__name__,
            "pre_tokenizer": self._pre_tokenizer(),
            "max_window_tokens": self.max_len,
            "window_stride_tokens": self.stride,
            "windows": "whole-word windows; each word from the window where it is most central",
            "pooling": "mean of the word's sub-token hidden states (word_ids of pre-split words), float32",
            "layers": "0 = embeddings output, i = output of block i",
            "versions": self._versions,
        }


def load_hf_text_backend(model: str, device: str = "cpu", **opts) -> HFTextBackend:
    """The registry's entry point for ``load_backend("text", model, device, **opts)``."""
    allowed = {"max_tokens", "stride", "revision", "precision"}
    return HFTextBackend(model, device, **{k: v for k, v in opts.items() if k in allowed and v is not None})
