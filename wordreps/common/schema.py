"""Declared schemas of the toolkit's JSON files, checked in one place, with one line naming the file and field.

Each format (alignment JSON, embeddings manifest, keys file, matrices.json) declares its shape once, as a tree
of the small specs below, and its reader calls :func:`validate` before it uses any field. A hand-edited or
damaged file then gives one :class:`UserError` such as::

    alignment file al.json: field utterances[3].num_samples (utterance 1272-128104-0003) is 'many' (a string),
    expected an integer >= 1; re-create it with alignments/alignments_and_trans.py

instead of a ``ValueError: invalid literal`` from deep inside. What a schema cannot say (frames inside the
audio, ids that repeat, rows that match another file) stays with each format's reader, after validation.

Why not a JSON Schema library: the four schemas are small, the alignment of dev-clean has 54k word objects
(this walk checks them in about 0.1 s), and the messages need the utterance or row named beside the field.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from wordreps.common.errors import UserError
from wordreps.common.names import name_problem

Label = Callable[[int, Any], str | None]   # (index or key, the element) -> "utterance 1272-..." or None


class Invalid(Exception):
    """A schema violation: ``path`` (list of segments), what was found and what was expected."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem
        self.path: list[str] = []
        self.labels: list[str] = []


def _shown(value: Any) -> str:
    kind = {str: "a string", bool: "a boolean", int: "an integer", float: "a number", list: "a list",
            dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)
    if value is None:
        return "null"
    text = json.dumps(value, ensure_ascii=False, allow_nan=True) if isinstance(value, (str, int, float, bool)) \
        else ("[...]" if isinstance(value, list) else "{...}")
    if isinstance(value, str):
        text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({kind})"


class Spec:
    expected = "a value"

    def check(self, value: Any) -> None:  # pragma: no cover - every spec overrides it
        raise NotImplementedError

    def fail(self, value: Any) -> Invalid:
        return Invalid(f"is {_shown(value)}, expected {self.expected}")


@dataclass
class Int(Spec):
    lo: int | None = None
    hi: int | None = None

    def __post_init__(self) -> None:
        bounds = [f">= {self.lo}"] if self.lo is not None else []
        bounds += [f"<= {self.hi}"] if self.hi is not None else []
        self.expected = "an integer" + (" " + " and ".join(bounds) if bounds else "")

    def check(self, value: Any) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or \
                (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            raise self.fail(value)


@dataclass
class Num(Spec):
    lo: float | None = None

    def __post_init__(self) -> None:
        self.expected = "a finite number" + (f" >= {self.lo:g}" if self.lo is not None else "")

    def check(self, value: Any) -> None:
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or \
                (self.lo is not None and value < self.lo):
            raise self.fail(value)


@dataclass
class Str(Spec):
    nonempty: bool = False
    # a name that becomes a file name (an utterance id): checked by wordreps.common.names
    file_name: bool = False
    choices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.choices:
            self.expected = " or ".join(repr(c) for c in self.choices)
        elif self.file_name:
            self.expected = "a plain file name (no '/', '\\', leading '.', control character; at most 200 bytes)"
        else:
            self.expected = "a non-empty string" if self.nonempty else "a string"

    def check(self, value: Any) -> None:
        if not isinstance(value, str) or (self.nonempty and not value) or \
                (self.choices and value not in self.choices):
            raise self.fail(value)
        if self.file_name:
            why = name_problem(value)
            if why is not None:
                raise Invalid(f"is {_shown(value)}, which cannot be used as a file name ({why})")


class Bool(Spec):
    expected = "true or false"

    def check(self, value: Any) -> None:
        if not isinstance(value, bool):
            raise self.fail(value)


class AnyValue(Spec):
    expected = "any JSON value"

    def check(self, value: Any) -> None:
        return None


@dataclass
class Optional(Spec):
    """``inner`` or null."""
    inner: Spec

    def __post_init__(self) -> None:
        self.expected = f"{self.inner.expected} or null"

    def check(self, value: Any) -> None:
        if value is not None:
            self.inner.check(value)


def _descend(spec: Spec, value: Any, segment: str, label: str | None) -> None:
    try:
        spec.check(value)
    except Invalid as err:
        _locate(err, segment, label)
        raise


def _locate(err: Invalid, segment: str, label: str | None) -> None:
    """Say where ``err`` happened, from the outside in (called as it propagates out of each level)."""
    err.path.insert(0, segment)
    if label:
        err.labels.insert(0, label)


@dataclass
class List(Spec):
    item: Spec
    min_len: int = 0
    label: Label | None = None

    def __post_init__(self) -> None:
        self.expected = "a list" + (f" of at least {self.min_len} element(s)" if self.min_len else "")

    def check(self, value: Any) -> None:
        if not isinstance(value, list) or len(value) < self.min_len:
            raise self.fail(value)
        # the element's place and label are built only on failure: an alignment has tens of thousands of words
        for i, element in enumerate(value):
            try:
                self.item.check(element)
            except Invalid as err:
                _locate(err, f"[{i}]", self.label(i, element) if self.label else None)
                raise


@dataclass
class Tuple(Spec):
    """A list of exactly ``len(items)`` elements, element i matching ``items[i]``."""
    items: tuple[Spec, ...]

    def __post_init__(self) -> None:
        self.expected = f"a list of {len(self.items)} elements"

    def check(self, value: Any) -> None:
        if not isinstance(value, list) or len(value) != len(self.items):
            raise self.fail(value)
        for i, (spec, element) in enumerate(zip(self.items, value)):
            _descend(spec, element, f"[{i}]", None)


@dataclass
class Obj(Spec):
    """An object with ``required`` fields and ``optional`` ones (others are allowed and not checked)."""
    required: Mapping[str, Spec]
    optional: Mapping[str, Spec] = field(default_factory=dict)

    expected = "an object"

    def check(self, value: Any) -> None:
        if not isinstance(value, dict):
            raise self.fail(value)
        for key, spec in self.required.items():
            if key not in value:
                err = Invalid("is missing")
                err.path.insert(0, "." + key)
                raise err
            _descend(spec, value[key], "." + key, None)
        for key, spec in self.optional.items():
            if key in value:
                _descend(spec, value[key], "." + key, None)


@dataclass
class Map(Spec):
    """An object used as a map: every key matches ``key``, every value ``value``."""
    value: Spec
    key: Str = field(default_factory=Str)
    label: Label | None = None

    expected = "an object"

    def check(self, value: Any) -> None:
        if not isinstance(value, dict):
            raise self.fail(value)
        for k, v in value.items():  # as in List: the key's place and label are built only on failure
            try:
                self.key.check(k)
            except Invalid as err:
                err.problem = "has a key that " + err.problem
                err.path.insert(0, _key_segment(k))
                raise
            try:
                self.value.check(v)
            except Invalid as err:
                _locate(err, _key_segment(k), self.label(k, v) if self.label else None)
                raise


def _key_segment(key: str) -> str:
    return f"[{json.dumps(key, ensure_ascii=False)}]"


def validate(obj: Any, spec: Spec, where: str, hint: str) -> None:
    """Check ``obj`` against ``spec``; the first violation is a :class:`UserError`
    ``<where>: field <path> (<labels>) <problem>; <hint>``."""
    try:
        spec.check(obj)
    except Invalid as err:
        path = "".join(err.path).lstrip(".") or "(the whole file)"
        labels = f" ({', '.join(err.labels)})" if err.labels else ""
        raise UserError(f"{where}: field {path}{labels} {err.problem}; {hint}") from None


def check_format(obj: Any, fmt: str, version: int, where: str, what: str, hint: str) -> dict:
    """The two fields every toolkit JSON starts with: ``format`` (which kind of file) and ``version``."""
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise UserError(f"{where} is not a {what} (format {found!r}, expected {fmt!r}); {hint}")
    if obj.get("version") != version:
        raise UserError(f"{where} has version {obj.get('version')!r}, this toolkit reads version {version}; {hint}")
    return obj
