"""Recorded runs: trainings too long for a chapter's time budget, run once with the ``wmlib``
command that each file records (its ``"command"``), and shipped inside the package so that every
copy of the book, Colab included, shows the same numbers.

``load("babi_1k")`` reads ``babi_1k.json`` from this folder; ``path(name, suffix)`` locates
any other file recorded with it (for instance trained weights).
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["path", "load", "names"]

HERE = Path(__file__).resolve().parent


def names() -> list[str]:
    """The recorded runs shipped with this copy of wmlib."""
    return sorted(p.stem for p in HERE.glob("*.json"))


def path(name: str, suffix: str = ".json") -> Path:
    """The file of recorded run ``name``; a clear error names the runs there are."""
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"a recorded run is named by a plain file stem such as 'babi_1k', got {name!r}")
    p = HERE / f"{name}{suffix}"
    if not p.exists():
        raise FileNotFoundError(f"no recorded run {p.name} in {HERE}; recorded runs: {', '.join(names()) or 'none'}")
    return p


def load(name: str) -> dict:
    """The JSON record of run ``name`` (see :func:`names`)."""
    return json.loads(path(name).read_text())
