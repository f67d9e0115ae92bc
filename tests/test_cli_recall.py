"""``wmlib recall``: a fast run writes the documented JSON; the recorded run matches the code."""

import inspect
import json
from pathlib import Path

import pytest

from wmlib.cli import main
from wmlib.synthetic import RECALL_GPT, RECALL_TEST_SEED, AssociativeRecall, train_recall

RECORDED = Path(__file__).resolve().parents[1] / "wmlib" / "results" / "ch05_recall_long.json"


def test_recall_json_schema(tmp_path, capsys):
    out = tmp_path / "recall.json"
    assert main(["recall", "--format", "pairs", "--pairs", "2", "--steps", "3", "--seeds", "1,0",
                 "--eval-every", "2", "--n-test", "20", "--json", str(out)]) == 0
    assert "seed 1" in capsys.readouterr().out
    res = json.loads(out.read_text())
    assert res["task"] == {"n_pairs": 2, "n_keys": 26, "n_values": 10, "interleaved": False,
                           "test_seed": RECALL_TEST_SEED, "n_test": 20}
    assert res["training"]["steps"] == 3 and res["training"]["model"] == RECALL_GPT
    assert [s["seed"] for s in res["seeds"]] == [0, 1]
    for s in res["seeds"]:
        assert s["curve_steps"] == [0, 2, 3] and len(s["curve_accuracy"]) == 3
        assert len(s["test_items"]) == 20 and s["test_items"].count("1") == s["test_correct"]
    assert res["command"].startswith("wmlib") and res["cpu_seconds"] >= 0


@pytest.mark.parametrize("argv", [["recall", "--steps", "-1"], ["recall", "--seeds", "x"],
                                  ["recall", "--seeds", "-1"], ["recall", "--format", "both"],
                                  ["recall", "--lr", "0"], ["recall", "--json", "."]])
def test_bad_flags_exit_2_with_one_line(argv, wmlib_cli):
    code, lines = wmlib_cli(argv)
    assert code == 2, (code, lines)
    assert len(lines) == 1 and "error:" in lines[0], lines


@pytest.mark.skipif(not RECORDED.exists(), reason="no recorded run")
def test_recorded_run_matches_the_code():
    """Chapter 5 reads this file: it must be what `wmlib recall` writes with today's defaults."""
    res = json.loads(RECORDED.read_text())
    defaults = {k: p.default for k, p in inspect.signature(train_recall).parameters.items()}
    tr = res["training"]
    assert {k: tr[k] for k in ("batch_size", "lr", "n_eval")} == {k: defaults[k] for k in ("batch_size", "lr", "n_eval")}
    assert tr["model"] == RECALL_GPT
    task = AssociativeRecall()
    assert (res["task"]["n_keys"], res["task"]["n_values"]) == (task.n_keys, task.n_values)
    assert res["task"]["test_seed"] == RECALL_TEST_SEED and res["task"]["interleaved"]
    assert len(res["seeds"]) >= 5 and len({s["seed"] for s in res["seeds"]}) == len(res["seeds"])
    for s in res["seeds"]:
        assert len(s["test_items"]) == res["task"]["n_test"] == s["n_test"]
        assert s["test_items"].count("1") == s["test_correct"] and s["curve_steps"][-1] == tr["steps"]
    assert "--steps" in res["command"] and "recall" in res["command"]
    # ... and it is the chapter's full-mode experiment, ten times longer
    full = _chapter_full_settings()
    assert res["task"]["n_pairs"] == full["N_PAIRS"] and tr["steps"] == 10 * full["STEPS"]
    assert sorted(s["seed"] for s in res["seeds"]) == list(range(full["SEEDS"]))


def _chapter_full_settings() -> dict:
    """N_PAIRS, STEPS and the number of SEEDS that Chapter 5 uses with QUICK=False (read from its source)."""
    import re

    nb = json.loads((RECORDED.parents[2] / "chapters" / "ch05_transformer_from_scratch.ipynb").read_text())
    src = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    found = {name: re.search(rf"^{name} = .*? if QUICK else (\d+)", src, re.M) for name in ("N_PAIRS", "STEPS")}
    seeds = re.search(r"^SEEDS = \[SEED \+ i for i in range\(\d+ if QUICK else (\d+)\)\]", src, re.M)
    assert all(found.values()) and seeds, "Chapter 5's N_PAIRS, STEPS or SEEDS line changed: update this test"
    return {**{k: int(m.group(1)) for k, m in found.items()}, "SEEDS": int(seeds.group(1))}
