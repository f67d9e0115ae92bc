"""``wmlib icl``: Chapter 12's study as a command (flags, a tiny run, resuming)."""

import json
import subprocess
import sys

import pytest

from wmlib.cli import main

BAD = [
    ["icl", "--n-eval", "0"],
    ["icl", "--ks", "x"],
    ["icl", "--k-random", "3"],  # not one of the ks
    ["icl", "--k-template", "5"],
    ["icl", "--orders", "25"],  # 4 demonstrations have 24 orders
    ["icl", "--chat-template", "sometimes"],
    ["icl", "--resume"],  # nothing to resume
]


@pytest.mark.parametrize("argv", BAD, ids=[" ".join(a) for a in BAD])
def test_bad_flags_exit_2_with_one_line(argv):
    out = subprocess.run([sys.executable, "-m", "wmlib.cli", *argv], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, (out.returncode, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0] and "Traceback" not in out.stderr, out.stderr


TINY = ["icl", "--n-eval", "3", "--ks", "1", "--draws", "1", "--k-random", "1", "--k-order", "1", "--orders", "1",
        "--k-words", "1", "--word-draws", "1", "--k-template", "1", "--template-draws", "1", "--threads", "1"]


def test_tiny_run_and_resume(tmp_path, capsys):
    out = tmp_path / "icl.json"
    assert main(TINY + ["--json", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["complete"] and rec["model"] == "smollm2-135m" and rec["config"]["n_eval"] == 3
    names = list(rec["conditions"])
    assert names[:2] == ["k0", "k1/d0"] and "random/k1/d0" in names and "other-template/k1/d0" in names
    assert all(len(c["pred"]) == 3 for c in rec["conditions"].values())
    # an interrupted run: drop two conditions, mark it incomplete, resume
    partial = dict(rec, complete=False, conditions={k: v for k, v in rec["conditions"].items() if k not in names[1:3]})
    out.write_text(json.dumps(partial))
    assert main(TINY + ["--json", str(out), "--resume"]) == 0
    again = json.loads(out.read_text())
    assert again["complete"] and list(again["conditions"]) == names
    assert again["conditions"] == rec["conditions"]  # the same predictions, in the study's order
    assert "--resume" not in again["command"]
    # resuming a run of another configuration is refused
    assert main(TINY[:2] + ["4"] + TINY[3:] + ["--json", str(out), "--resume"]) == 2
    assert "differs" in capsys.readouterr().err
