"""Installed versions of the libraries that shape the numbers, for manifests and results."""
from __future__ import annotations

from importlib import metadata


def dist_version(dist: str) -> str | None:
    """The installed version of distribution ``dist`` (a PyPI name), or None when it is not installed."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def module_version(module: str) -> str | None:
    """``module.__version__`` (imported here, so the answer never depends on what the process imported
    before; torch's carries its build, ``2.8.0+cu128``), else its distribution's version, else None."""
    import importlib

    try:
        version = getattr(importlib.import_module(module), "__version__", None)
    except Exception:  # absent, or installed but broken: not part of this run's numbers
        return dist_version(module)
    return str(version) if version is not None else dist_version(module)
