"""``wmlib copy-task``: flags, a tiny run, and the recorded run matches today's configuration."""

import json
import shlex

import pytest

from wmlib.cli import build_parser, main


def test_a_tiny_run_writes_json_and_weights(tmp_path, capsys):
    out, weights = tmp_path / "copy.json", tmp_path / "ntm.pt"
    code = main(["copy-task", "--seeds", "0", "--ntm-steps", "1", "--lstm-steps", "1", "--n-eval", "2",
                 "--json", str(out), "--weights", str(weights)])
    assert code == 0
    res = json.loads(out.read_text())
    assert [(r["kind"], r["seed"]) for r in res["runs"]] == [("lstm", 0), ("ntm", 0)]
    assert res["config"]["ntm"]["steps"] == 1 and res["config"]["n_eval"] == 2
    assert set(res["runs"][0]["errors"]) == {str(L) for L in res["config"]["lengths"]}
    assert res["runs"][1]["threads"] == 1 and res["cpu_seconds"] > 0
    assert "weights" not in res and not weights.exists()  # one step fits nothing
    assert "does not fit" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["--seeds", "4-1"], ["--seeds", "-1"], ["--models", "gru"], ["--workers", "0"],
                                  ["--ntm-steps", "0"], ["--n-eval", "x"]])
def test_bad_flags_exit_2_in_one_line(argv, capsys):
    assert main(["copy-task", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("kind", ["ntm", "lstm"])
def test_the_recorded_runs_match_todays_configuration(kind):
    """Chapter 9 loads copy_task_ntm (with the weights of its first seed that fits) and copy_task_lstm."""
    from wmlib import results
    from wmlib.copy_task import CopyExperiment

    run = results.load(f"copy_task_{kind}")
    words = shlex.split(run["command"])
    args = build_parser().parse_args(words[1:])
    assert words[:2] == ["wmlib", "copy-task"] and args.models == [kind]
    assert args.ntm_steps is None and args.lstm_steps is None and args.n_eval is None  # the defaults...
    assert run["config"] == json.loads(json.dumps(CopyExperiment().to_dict()))  # ...are CopyExperiment()
    assert sorted(r["seed"] for r in run["runs"]) == args.seeds and len(args.seeds) >= 5
    assert {r["kind"] for r in run["runs"]} == {kind}
    if kind == "ntm":
        assert args.weights is not None and run["weights"]["file"] == args.weights.name == "copy_task_ntm.pt"
        assert results.path("copy_task_ntm", ".pt").exists()
