"""The one check of names that become part of a path: utterance ids, ``--name``, model folder names.

A name read from a file or a flag (an utterance id in an alignment JSON, a keys file or a manifest; an
``--name``; a model's folder name) is used as ONE file or folder name inside an output folder. It is checked
where it enters, so that nothing a file says can place a file outside the output folder (``../../x``), hide
it (``.x``, which would also look like a temporary file), or fail later with an operating-system error
(a NUL byte, a name too long for the file system).
"""
from __future__ import annotations

import re

from wordreps.common.errors import UserError

# File systems allow 255 bytes per name; the writers add ".npy" and a temporary name's ".<name>.<8 chars>.tmp",
# and safe_utterance_ids (wordreps/alignments/utterances.py) makes ids of at most 150 + 9 bytes.
MAX_NAME_BYTES = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be one file name inside an output folder, or None when it can."""
    if not isinstance(name, str):
        return f"it is a {type(name).__name__}, not a string"
    if not name:
        return "it is empty"
    if name in (".", ".."):
        return f"{name!r} names a folder, not a file"
    if "/" in name or "\\" in name:
        return "it holds a path separator ('/' or '\\'), so it could place a file in another folder"
    if _CONTROL.search(name):
        return "it holds a control character (such as a NUL byte or a line break)"
    if name.startswith("."):
        return "it starts with '.', which makes a hidden file (and the toolkit's temporary names start so)"
    size = len(name.encode("utf-8", errors="surrogatepass"))
    if size > MAX_NAME_BYTES:
        return f"it is {size} bytes long, more than the {MAX_NAME_BYTES} a file name may have here"
    return None


def check_name(name: object, what: str, where: str, hint: str) -> str:
    """Return ``name`` if it is usable as one file name, else raise :class:`UserError`:
    ``<where>: <what> <name> cannot be a file name (<why>); <hint>``."""
    why = name_problem(name)
    if why is not None:
        shown = repr(name) if len(repr(name)) <= 80 else repr(name)[:77] + "..."
        raise UserError(f"{where}: {what} {shown} cannot be used as a file name ({why}); {hint}")
    return name  # type: ignore[return-value]
