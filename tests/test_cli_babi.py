"""``wmlib babi``: a fast run writes the documented JSON."""

import json

import pytest

from wmlib.cli import main
from wmlib.cli.babi import parse_tasks


def test_babi_json_schema(tmp_path, capsys):
    out = tmp_path / "babi.json"
    assert main(["babi", "--tasks", "1", "--epochs", "2", "--ls-epochs", "1", "--restarts", "2",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "single-supporting-fact" in text and "mean" in text
    res = json.loads(out.read_text())
    assert set(res["tasks"]) == {"1"}
    row = res["tasks"]["1"]
    assert 0 <= row["test_error"] <= 100 and row["reference_error"] == 0.1
    assert len(row["test_error_restarts"]) == 2 and len(row["hop_support"]) == 3
    assert res["mean_test_error"] == pytest.approx(row["test_error"])
    assert res["mode"] == "per-task" and res["config"]["epochs"] == 2 and res["wall_seconds"] > 0


def test_parse_tasks():
    assert parse_tasks("1-3,7") == [1, 2, 3, 7]
    with pytest.raises(ValueError, match="1-20"):
        parse_tasks("0-2")
    with pytest.raises(ValueError, match="cannot read"):
        parse_tasks("one")


def test_bad_option_is_a_clean_error(capsys):
    assert main(["babi", "--tasks", "21"]) == 2
    assert "numbered 1-20" in capsys.readouterr().err


def test_babi_joint_json_schema(tmp_path, capsys):
    out = tmp_path / "joint.json"
    assert main(["babi", "--tasks", "1,4", "--joint", "--epochs", "1", "--ls-epochs", "1", "--restarts", "1",
                 "--dim", "8", "--json", str(out)]) == 0
    assert "ref. joint" in capsys.readouterr().out
    res = json.loads(out.read_text())
    assert res["mode"] == "joint" and set(res["tasks"]) == {"1", "4"}
    assert res["tasks"]["4"]["reference_error"] == 5.9
    errors = [r["test_error"] for r in res["tasks"].values()]
    assert all(0 <= e <= 100 for e in errors)
    assert res["mean_test_error"] == pytest.approx(sum(errors) / 2, abs=0.01)


RECORDED = ["babi_1k", "babi_1k_hops1", "babi_1k_hops2", "babi_1k_paper_pe", "babi_1k_joint"]


def config_of(command: str) -> dict:
    """The TrainConfig that a recorded ``wmlib babi ...`` command line runs with today's code."""
    import shlex
    from dataclasses import asdict

    from wmlib.cli import build_parser
    from wmlib.cli.babi import _config

    words = shlex.split(command)
    assert words[:2] == ["wmlib", "babi"], command
    return asdict(_config(build_parser().parse_args(words[1:])))


@pytest.mark.parametrize("name", RECORDED)
def test_recorded_runs_match_what_their_command_runs_today(name):
    from wmlib import results

    run = results.load(name)
    assert run["config"] == config_of(run["command"])
    assert len(run["tasks"]) == 20 and all(len(r["test_wrong"]) <= r["n_test"] for r in run["tasks"].values())


def test_the_defaults_are_the_books_configuration():
    from dataclasses import asdict

    from wmlib import results
    from wmlib.memn2n import TrainConfig

    assert config_of("wmlib babi --tasks 1-20 --size 1k") == asdict(TrainConfig())
    assert config_of("wmlib babi --joint") == asdict(TrainConfig.joint())
    assert config_of("wmlib babi --hops 1 --restarts 2 --encoding bow")["hops"] == 1
    main_run = results.load("babi_1k")
    assert main_run["config"] == asdict(TrainConfig())  # `wmlib babi --tasks 1-20 --size 1k` reproduces it
    options = [w for w in main_run["command"].split() if w.startswith("--")]
    assert set(options) <= {"--tasks", "--size", "--workers", "--threads", "--json"}, main_run["command"]
