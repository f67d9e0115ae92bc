"""``wmlib icl``: Chapter 12's study as a command (flags, a tiny run, resuming)."""

import json
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
def test_bad_flags_exit_2_with_one_line(argv, wmlib_cli):
    code, lines = wmlib_cli(argv)
    assert code == 2, (code, lines)
    assert len(lines) == 1 and "error" in lines[0], lines


TINY_ARGS = ["icl", "--n-eval", "3", "--ks", "1", "--draws", "1", "--k-random", "1", "--k-order", "1", "--orders", "1",
             "--k-words", "1", "--word-draws", "1", "--k-template", "1", "--template-draws", "1", "--threads", "1"]


def test_tiny_run_and_resume(tmp_path, capsys, tiny_model_dir):
    """The study's plumbing (record, resume, refusal) on a tiny random Llama: 0.5 CPU-s a run, not
    SmolLM2's 11 (the recorded study's configuration is checked below, against today's defaults)."""
    out = tmp_path / "icl.json"
    model = str(tiny_model_dir("llama"))
    argv = TINY_ARGS + ["--model", model]
    assert main(argv + ["--json", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["complete"] and rec["model"] == model and rec["config"]["n_eval"] == 3
    names = list(rec["conditions"])
    assert names[:2] == ["k0", "k1/d0"] and "random/k1/d0" in names and "other-template/k1/d0" in names
    assert all(len(c["pred"]) == 3 for c in rec["conditions"].values())
    # an interrupted run: drop two conditions, mark it incomplete, resume
    partial = dict(rec, complete=False, conditions={k: v for k, v in rec["conditions"].items() if k not in names[1:3]})
    out.write_text(json.dumps(partial))
    assert main(argv + ["--json", str(out), "--resume"]) == 0
    again = json.loads(out.read_text())
    assert again["complete"] and list(again["conditions"]) == names
    assert again["conditions"] == rec["conditions"]  # the same predictions, in the study's order
    assert "--resume" not in again["command"]
    # resuming a run of another configuration is refused
    assert main(argv[:2] + ["4"] + argv[3:] + ["--json", str(out), "--resume"]) == 2
    assert "differs" in capsys.readouterr().err


def config_of(command: str, monkeypatch) -> dict:
    """The ICLStudyConfig that a recorded ``wmlib icl ...`` command line runs with today's code: the
    command itself is run, up to the point where it hands its configuration to the study."""
    import shlex
    from dataclasses import asdict
    from types import SimpleNamespace

    import wmlib.icl
    import wmlib.models

    class Handed(Exception):
        pass

    def capture(model, tokenizer, config, **kwargs):
        raise Handed(config)

    words = shlex.split(command)
    assert words[:2] == ["wmlib", "icl"], command
    if "--json" in words:  # never overwrite the record
        i = words.index("--json")
        words = words[:i] + words[i + 2:]
    monkeypatch.setattr(wmlib.icl, "run_icl_study", capture)
    monkeypatch.setattr(wmlib.models, "load_causal_lm",
                        lambda *a, **k: (None, SimpleNamespace(chat_template="a template")))
    with pytest.raises(Handed) as handed:
        main(words[1:])
    cfg = handed.value.args[0]
    return asdict(cfg) | {"ks": list(cfg.ks)}


def _recorded():
    from wmlib import results

    return [n for n in ("icl_sst2", "icl_sst2_plain") if n in results.names()] or ["icl_sst2"]


@pytest.mark.parametrize("name", _recorded())
def test_recorded_run_matches_what_its_command_runs_today(name, monkeypatch):
    from wmlib import results
    from wmlib.icl import ICLStudyConfig, study_conditions

    if name not in results.names():
        pytest.skip("no recorded ICL study in this copy")
    rec = results.load(name)
    assert rec["config"] == config_of(rec["command"], monkeypatch)
    assert rec["command"].split()[:2] == ["wmlib", "icl"] and "--resume" not in rec["command"]
    assert rec["complete"] and rec["model"] == "smollm2-135m" and rec["dtype"] == "float32"
    cfg = ICLStudyConfig(**rec["config"])
    assert [c["name"] for c in study_conditions(cfg, has_template=True)] == list(rec["conditions"])
    assert len(rec["labels"]) == cfg.n_eval


def test_config_of_reads_the_flags(monkeypatch):
    from dataclasses import asdict

    from wmlib.icl import ICLStudyConfig

    assert config_of("wmlib icl --threads 1 --json x.json", monkeypatch) == asdict(ICLStudyConfig()) | {"ks": [0, 4, 16]}
    got = config_of("wmlib icl --threads 1 --n-eval 300 --draws 3 --orders 4 --word-draws 1 --template-draws 2", monkeypatch)
    assert (got["n_eval"], got["draws"], got["orders"], got["word_draws"], got["template_draws"]) == (300, 3, 4, 1, 2)
