"""wmlib.results: the recorded runs ship inside the package (Colab has no book/ folder)."""

import pytest

from wmlib import results


def test_recorded_runs_load_from_the_package():
    assert "babi_1k" in results.names()
    run = results.load("babi_1k")
    assert len(run["tasks"]) == 20 and run["command"].startswith("wmlib babi")
    assert results.path("babi_1k").parent == results.HERE


def test_bad_names_are_clear_errors():
    with pytest.raises(FileNotFoundError, match="recorded runs: .*babi_1k"):
        results.load("no_such_run")
    for bad in ("", "../babi_1k", ".hidden", 3):
        with pytest.raises(ValueError, match="plain file stem"):
            results.path(bad)


def test_the_wheel_ships_the_recorded_runs():
    import tomllib
    from pathlib import Path

    data = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert "results/*.json" in data["tool"]["setuptools"]["package-data"]["wmlib"]
