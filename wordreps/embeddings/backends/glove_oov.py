"""GloVe's out-of-vocabulary words that GloVe itself split: ``--oov compose``.

GloVe's vectors (6B, 42B, 840B) were trained on text tokenized by the Stanford tokenizer (CoreNLP's
``PTBTokenizer``, Penn Treebank conventions), which splits clitics off words. So GloVe has ``i`` and ``'m``
but no ``i'm``, ``do`` and ``n't`` but no ``don't``, while a speech corpus's word tier holds the spoken
contraction as one word. With ``--oov compose`` such a word gets the mean of the vectors of the pieces the
tokenizer would have made of it (all of them must have a vector); ``--oov missing`` (the default, the
toolkit's behaviour before this option) leaves it without a vector, and its occurrences drop out of the
shared keys.

:func:`stanford_split` reproduces the tokenizer's rules for a single word (``PTBLexer.flex``, the rules
in place since before GloVe was trained):

- ``REDAUX``: a word followed by ``'s 'm 'd 're 've 'll`` splits off the clitic, at most two of them
  (``i'm`` -> ``i 'm``, ``there's`` -> ``there 's``, ``i'd've`` -> ``i 'd 've``);
- ``REDAUX_NOT``: ``n't`` splits off a word ending in a letter other than n (``don't`` -> ``do n't``,
  ``can't`` -> ``ca n't``, ``won't`` -> ``wo n't``, ``shouldn't've`` -> ``should n't 've``);
- assimilations: ``cannot`` -> ``can not``; ``gonna gotta lemme gimme wanna`` -> ``gon na``, ``got ta``, ...;
  ``'tis 'twas`` -> ``'t is``, ``'t was``;
- a word ending in an apostrophe (plural possessive) splits it off: ``students'`` -> ``students '``.

Other apostrophes stay inside the word (``o'clock``). Curly apostrophes are read as ``'`` (the tokenizer's
``APOS`` class). Words are lower-cased, as GloVe 6B and 42B are.
"""
from __future__ import annotations

import re
from typing import Callable, Sequence

import numpy as np

OOV_CHOICES = ("missing", "compose")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u00b4": "'", "`": "'"})
_ASSIMILATIONS = {"cannot": ["can", "not"], "gonna": ["gon", "na"], "gotta": ["got", "ta"],
                  "lemme": ["lem", "me"], "gimme": ["gim", "me"], "wanna": ["wan", "na"],
                  "'tis": ["'t", "is"], "'twas": ["'t", "was"]}
_REDAUX = re.compile(r"^(.*[^\W_])('(?:s|m|d|re|ve|ll))$")   # a word (ending in a letter/digit) + clitic
_NOT = re.compile(r"^(.*[^\W\d_n])(n't)$")                    # WORD_NOT ends in a letter other than n


def stanford_split(word: str) -> list[str]:
    """The tokens the Stanford tokenizer makes of one word, lower-cased (see the module docstring)."""
    w = word.strip().lower().translate(_APOSTROPHES)
    if w in _ASSIMILATIONS:
        return list(_ASSIMILATIONS[w])
    tail: list[str] = []
    for _ in range(2):
        m = _REDAUX.match(w)
        if not m:
            break
        w, clitic = m.group(1), m.group(2)
        tail.insert(0, clitic)
    m = _NOT.match(w)
    if m:
        w = m.group(1)
        tail.insert(0, "n't")
    if not tail and len(w) > 1 and w.endswith("'") and not w.endswith("''"):
        return [w[:-1], "'"]
    return [w, *tail]


def composable_pieces(words: Sequence[str]) -> dict[str, list[str]]:
    """``{word: pieces}`` for the words the tokenizer splits (more than one piece)."""
    out = {}
    for word in words:
        pieces = stanford_split(word)
        if len(pieces) > 1:
            out[word] = pieces
    return out


def compose(word: str, lookup: Callable[[str], np.ndarray | None]) -> np.ndarray | None:
    """Mean (float32, summed in float64) of the vectors of ``word``'s pieces, or None when the tokenizer
    leaves it whole or a piece has no vector."""
    return compose_pieces(stanford_split(word), lookup)


def compose_pieces(pieces: Sequence[str], lookup: Callable[[str], np.ndarray | None]) -> np.ndarray | None:
    """:func:`compose` for a word already split (e.g. by :func:`composable_pieces`)."""
    if len(pieces) < 2:
        return None
    vectors = [lookup(p) for p in pieces]
    if any(v is None for v in vectors):
        return None
    return np.mean(np.stack(vectors).astype(np.float64), axis=0).astype(np.float32)
