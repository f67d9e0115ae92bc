"""Shared set-up for the test suite.

- Data come from ``../shared/data`` beside the repository when present (never downloaded in CI).
- Progress bars are off and the hub is offline, so runs are quiet and never touch the network.
- ``executed_chapter(path)`` runs a chapter once per session with papermill in QUICK mode and
  returns the executed notebook; the site test builds the book from those executed copies.
- ``tiny_model_dir(family)`` / ``tiny_lm(family)``: tiny random-initialised models of every supported
  decoder family (``wmlib.testing``), built offline once per session.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
if "WMLIB_DATA_DIR" not in os.environ and (SHARED_DATA / "SHA256SUMS").exists():
    os.environ["WMLIB_DATA_DIR"] = str(SHARED_DATA)
os.environ.setdefault("WMLIB_PROGRESS", "off")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("PYTHONHASHSEED", "0")

sys.path.insert(0, str(ROOT / "book" / "tools"))

EXECUTED = ROOT / "_build" / "test-notebooks"


def pytest_collection_modifyitems(items):
    """nbval's notebooks in tests/notebooks/ start a kernel each: the slow tier (make test, not make test-unit)."""
    for item in items:
        if item.nodeid.startswith("tests/notebooks/") or "/tests/notebooks/" in str(getattr(item, "path", "")):
            item.add_marker(pytest.mark.slow)


def chapter_paths() -> list[Path]:
    import sync

    return sync.chapters()


_executed: dict[Path, object] = {}
_failed: dict[Path, str] = {}


def execute_chapter(path: Path):
    """Run ``path`` with QUICK=True (once per session); return the executed notebook."""
    import nbformat
    import papermill as pm

    if path in _failed:
        pytest.fail(f"{path.name} failed earlier in this session: {_failed[path]}")
    if path not in _executed:
        EXECUTED.mkdir(parents=True, exist_ok=True)
        out = EXECUTED / path.name
        try:
            pm.execute_notebook(
                str(path), str(out), parameters={"QUICK": True}, kernel_name="python3",
                cwd=str(path.parent), progress_bar=False, log_output=False,
            )
        except pm.PapermillExecutionError as err:
            _failed[path] = f"{err.ename}: {err.evalue}"
            raise
        _executed[path] = nbformat.read(out, as_version=4)
    return _executed[path]


@pytest.fixture(scope="session")
def executed_chapter():
    return execute_chapter


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """``tiny_model_dir(family)``: the folder of a tiny random model of ``family`` (wmlib.testing),
    with its tokenizer, built on first use into a session temp dir; ``load_causal_lm(path)`` loads it."""
    from wmlib.testing import build_tiny_model

    built: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in built:
            built[family] = build_tiny_model(family, tmp_path_factory.mktemp(f"tiny-{family}") / family)
        return built[family]

    return get


@pytest.fixture(scope="session")
def tiny_lm(tiny_model_dir):
    """``tiny_lm(family)``: ``(model, tokenizer)`` of a tiny random model, loaded once per session."""
    from wmlib.models import load_causal_lm

    loaded: dict[str, tuple] = {}

    def get(family: str):
        if family not in loaded:
            loaded[family] = load_causal_lm(str(tiny_model_dir(family)))
        return loaded[family]

    return get


@pytest.fixture
def wmlib_cli(capsys):
    """``wmlib ARGV`` run in this process (no interpreter start-up per case): returns the exit status
    and the lines written to stderr. The console script itself is tested once, in a subprocess
    (tests/test_tools.py and tests/test_cli.py)."""
    from wmlib.cli import main

    def run(argv):
        capsys.readouterr()
        code = main([str(a) for a in argv])
        return code, capsys.readouterr().err.strip().splitlines()

    return run
