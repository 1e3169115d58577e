"""Installed versions of the libraries that shape the numbers, for manifests and results."""
from __future__ import annotations

from importlib import metadata


def dist_version(dist: str) -> str | None:
    """The installed version of distribution ``dist`` (a PyPI name), or None when it is not installed."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
