"""Types for command-line flags: each checks its range and names what was wrong.

argparse turns the ``ArgumentTypeError`` these raise into ``wmlib CMD: error: argument --flag: ...``
(one line, exit status 2). ``write_json`` reports an unusable output path the same way.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

__all__ = [
    "positive_int", "nonnegative_int", "positive_float", "nonnegative_float", "fraction", "int_list",
    "dtype_name", "DTYPES", "output_file", "output_dir", "write_json",
]


def _int(text: str) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def nonnegative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def positive_float(text: str) -> float:
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {value:g}")
    return value


def nonnegative_float(text: str) -> float:
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value:g}")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1]."""
    value = _float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], got {value:g}")
    return value


def int_list(text: str) -> list[int]:
    """``"256,512,1024"`` -> [256, 512, 1024] (positive, at least one)."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, e.g. 256,512, got {text!r}")
    return [positive_int(p) for p in parts]


DTYPES = ("float32", "bfloat16", "float16")


def dtype_name(text: str) -> str:
    """A floating-point dtype a model can run in: float32, bfloat16 or float16."""
    name = str(text).strip().lower().removeprefix("torch.")
    name = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16", "float": "float32"}.get(name, name)
    if name not in DTYPES:
        raise argparse.ArgumentTypeError(f"choose one of {', '.join(DTYPES)}, got {text!r}")
    return name


def output_file(text: str) -> Path:
    """A file to write: not a directory; its folder is created when written."""
    path = Path(text).expanduser()
    if not str(text).strip():
        raise argparse.ArgumentTypeError("expected a file name, got an empty string")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a directory; name a file inside it, e.g. {path / 'results.json'}")
    if path.parent.exists() and not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {text!r}: {str(path.parent)!r} is a file, not a folder")
    return path


def output_dir(text: str) -> Path:
    """A folder to write into (created when written): not an existing file."""
    path = Path(text).expanduser()
    if not str(text).strip():
        raise argparse.ArgumentTypeError("expected a folder name, got an empty string")
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a file; name a folder to write into")
    return path


def write_json(path: os.PathLike | str, obj, indent: int = 2) -> Path:
    """Write ``obj`` as JSON to ``path`` (creating its folder); an unusable path is a ValueError
    naming it, which the CLI prints as one line."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as f:
            json.dump(obj, f, indent=indent)
            f.write("\n")
    except OSError as err:
        raise ValueError(f"cannot write {str(path)!r}: {err.strerror or err}") from None
    return path
