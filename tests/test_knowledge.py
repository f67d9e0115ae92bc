"""wmlib.knowledge: the fact set, teacher-forced scoring (checked against generate), override rates."""

import pytest
import torch

import json

from wmlib.knowledge import (DISTANCE_RUN, FACTS, RELATIONS, cloze_encoding, conflict_trials, counterfactual_answers,
                             counterfactual_prompt, distance_run, distance_sample, facts, filler_pool, filler_text,
                             override_rate, score_candidates, score_continuations)
from wmlib.models import load_causal_lm


@pytest.fixture(scope="module")
def smollm():
    return load_causal_lm("smollm2-135m")


def test_fact_set_is_well_formed():
    assert len(FACTS) >= 80
    assert len({(f.relation, f.subject) for f in FACTS}) == len(FACTS), "duplicate facts"
    for f in FACTS:
        assert f.relation in RELATIONS and f.answer.startswith(" ") and not f.answer.endswith(" ")
        assert not f.prompt.endswith(" ") and f.subject in f.prompt
        assert f.statement() == f.prompt + f.answer + "."
    assert len(facts("capital")) + len(facts("landmark")) + len(facts("language")) + len(facts("continent")) == len(FACTS)
    with pytest.raises(ValueError, match="unknown relation"):
        facts("capitals")


def test_counterfactuals_are_false_answers_of_the_same_relation():
    fs = facts()
    alts = counterfactual_answers(fs, seed=0)
    assert alts == counterfactual_answers(fs, seed=0), "seeded: the same every run"
    assert alts != counterfactual_answers(fs, seed=1)
    for f, a in zip(fs, alts):
        assert a != f.answer and a in {g.answer for g in facts(f.relation)}


def test_counterfactual_prompt_layout():
    f = next(f for f in FACTS if f.subject == "Eiffel Tower")
    p = counterfactual_prompt(f, " Rome", ["Mary went home.", "John slept."])
    assert p == "The Eiffel Tower is located in the city of Rome. Mary went home. John slept. " \
                "The Eiffel Tower is located in the city of"
    q = counterfactual_prompt(f, " Rome", [], reworded=True)
    assert q == "Rome is the home of the Eiffel Tower. The Eiffel Tower is located in the city of"
    for g in FACTS:  # every reworded statement names the subject and the answer, not the cloze prompt
        r = g.statement(" Xyz", reworded=True)
        assert g.subject in r and r.startswith("Xyz ") and g.prompt not in r
    with pytest.raises(TypeError, match="list of sentences"):
        counterfactual_prompt(f, " Rome", "Mary went home.")
    with pytest.raises(ValueError, match="false_answer"):
        counterfactual_prompt(f, " ")


def test_greedy_flag_agrees_with_generate(smollm):
    """Teacher forcing says 'greedy' exactly when model.generate (greedy) writes the continuation."""
    model, tok = smollm
    prompts = ["The capital of France is", "Digits: 4 1 8\nRepeat: 4 1 8\nDigits: 7 3 9\nRepeat:",
               "The Eiffel Tower is located in the city of Rome. The Eiffel Tower is located in the city of"]
    firsts = []
    for p in prompts:
        ids = tok(p, return_tensors="pt", add_special_tokens=False)
        out = model.generate(**ids, max_new_tokens=2, do_sample=False, pad_token_id=tok.pad_token_id)
        new_ids = out[0, ids["input_ids"].shape[1]:].tolist()
        text = tok.decode(new_ids)
        assert tok(text, add_special_tokens=False)["input_ids"] == new_ids, "pick prompts whose output re-tokenizes alike"
        firsts.append(text)
    altered = [f[:-1] + ("0" if f[-1] != "0" else "1") for f in firsts]  # the last token changed
    s = score_continuations(model, tok, prompts + prompts, firsts + altered, batch_size=4)
    assert s.greedy[:3].all(), firsts
    assert not s.greedy[3:].any()
    assert (s.logprob[:3] > s.logprob[3:]).all()


def test_padding_does_not_change_scores(smollm):
    model, tok = smollm
    prompts = ["The capital of Japan is", "Brazil is a country in the continent of", "Hi"]
    conts = [" Tokyo", " South America", " there, how are you"]
    one = score_continuations(model, tok, prompts, conts, batch_size=1)
    batched = score_continuations(model, tok, prompts, conts, batch_size=3)
    assert torch.allclose(one.logprob, batched.logprob, atol=1e-3)
    assert torch.equal(one.greedy, batched.greedy) and one.n_tokens.tolist() == batched.n_tokens.tolist()


def test_candidates_equal_separate_scoring(smollm):
    """Reusing the prompt's cache for several candidates gives what scoring each alone gives."""
    model, tok = smollm
    prompts = ["The capital of Argentina is", "The Golden Gate Bridge is located in the city of"]
    cands = [[" Buenos Aires", " Lima", " Mexico City"], [" San Francisco", " Rome", " New York"]]
    both = score_candidates(model, tok, prompts, cands, batch_size=2)
    assert both.logprob.shape == (2, 3) and both.n_tokens.tolist() == [[2, 1, 2], [2, 1, 2]]
    for j in range(3):
        alone = score_continuations(model, tok, prompts, [c[j] for c in cands], batch_size=1)
        assert torch.allclose(both.logprob[:, j], alone.logprob, atol=1e-3)
        assert torch.equal(both.greedy[:, j], alone.greedy)


def test_scoring_rejects_bad_input(smollm):
    model, tok = smollm
    with pytest.raises(ValueError, match="pair them"):
        score_continuations(model, tok, ["a", "b"], [" c"])
    with pytest.raises(TypeError, match="lists of strings"):
        score_continuations(model, tok, "a", " b")
    with pytest.raises(ValueError, match="empty"):
        score_continuations(model, tok, ["a"], [""])
    with pytest.raises(ValueError, match="batch_size"):
        score_continuations(model, tok, ["a"], [" b"], batch_size=0)
    with pytest.raises(ValueError, match="same number of candidates"):
        score_candidates(model, tok, ["a", "b"], [[" c"], [" d", " e"]])
    with pytest.raises(TypeError, match="lists of strings"):
        score_candidates(model, tok, ["a"], [" c"])


def test_override_rate():
    assert override_rate([True, False, True, True]) == 0.75
    assert override_rate(torch.tensor([True, False]), torch.tensor([False, True])) == 0.5
    with pytest.raises(ValueError, match="both"):
        override_rate([True, False], [True, False])
    with pytest.raises(ValueError, match="bools"):
        override_rate([1, 0])
    with pytest.raises(ValueError, match="non-empty"):
        override_rate([])


POOL = ["Mary moved to the bathroom.", "John went to the hallway.", "The box fits inside the chest.",
        "Sandra picked up the apple there.", "Daniel journeyed to the office.", "The kitchen is north of the garden.",
        "Bill is in the park.", "Fred gave the football to Jeff.", "Julie is either in the school or the cinema.",
        "Greg is a frog.", "Lily is white.", "The triangle is above the red square."] * 3


def test_filler_pool_removes_named_facts_and_spacing():
    texts = ["The company , based in Paris , grew 5 %.", "Sales rose ( slightly ) in Q3 .", "Sales rose ( slightly ) in Q3 .",
             "It 's fine ."]
    pool = filler_pool(texts)
    assert pool == ["Sales rose (slightly) in Q3.", "It's fine."], "Paris names a fact's answer; duplicates go"
    with pytest.raises(TypeError, match="list of sentences"):
        filler_pool("one string")
    with pytest.raises(ValueError, match="no filler sentence left"):
        filler_pool(["Paris is big."])


def test_filler_text_reaches_the_length(smollm):
    _, tok = smollm
    text, n = filler_text(tok, POOL, 40, torch.Generator().manual_seed(0))
    assert n >= 40 and n == len(tok(" " + text, add_special_tokens=False)["input_ids"])
    assert filler_text(tok, POOL, 0, torch.Generator()) == ("", 0)
    with pytest.raises(ValueError, match="non-negative int"):
        filler_text(tok, POOL, -1, torch.Generator())
    with pytest.raises(ValueError, match="fewer than"):
        filler_text(tok, POOL[:2], 500, torch.Generator())


def test_cloze_encoding_offsets_and_policy(smollm):
    _, tok = smollm
    text = "The capital of France is"
    ids, offs = cloze_encoding(tok, text)
    assert ids == tok(text, add_special_tokens=False)["input_ids"] and offs[0][0] == 0
    ids_t, offs_t = cloze_encoding(tok, text, chat_template="on")
    head = [i for i, (a, _) in enumerate(offs_t) if a < 0]
    assert head and ids_t[len(head):] == ids, "the template's tokens come first, then the text"
    with pytest.raises(TypeError, match="str"):
        cloze_encoding(tok, ["a"])
    with pytest.raises(ValueError, match="chat_template"):
        cloze_encoding(tok, text, chat_template="maybe")


@pytest.mark.parametrize("chat_template", ["off", "on"])
def test_conflict_trials_equal_whole_prompt_scoring(tiny_lm, chat_template):
    """Cutting the cache back per distance scores exactly what scoring each whole prompt scores (a
    property of the code, not of the model: a tiny random Llama, whose tokenizer puts a BOS first)."""
    model, tok = tiny_lm("llama")
    fs = [f for f in FACTS if (f.relation, f.subject) in (("capital", "France"), ("landmark", "Eiffel Tower"))]
    false = counterfactual_answers(fs, seed=0)
    rows = conflict_trials(model, tok, fs, false, [0, 9, 40], POOL, draws=2, keep_prompts=True,
                           chat_template=chat_template)
    assert len(rows) == 2 * 2 * 3 and {r["distance"] for r in rows} == {0, 9, 40}
    for r in rows:
        assert r["tokens"] >= r["distance"] and (r["distance"] > 0 or r["tokens"] == 0)
        f = fs[r["fact"]]
        assert r["prompt"].startswith(f.statement(false[r["fact"]])) and r["prompt"].endswith(" " + f.prompt)
    s = score_candidates(model, tok, [r["prompt"] for r in rows], [[false[r["fact"]], fs[r["fact"]].answer] for r in rows],
                         chat_template=chat_template)
    margins = torch.tensor([r["margin"] for r in rows])
    assert torch.allclose(margins, s.logprob[:, 0] - s.logprob[:, 1], atol=2e-3)
    assert [r["context"] for r in rows] == s.greedy[:, 0].tolist()
    assert [r["weights"] for r in rows] == s.greedy[:, 1].tolist()
    again = conflict_trials(model, tok, fs[:1], false[:1], [9], POOL, draws=2, keep_prompts=True,
                            chat_template=chat_template)
    same = [r for r in rows if r["fact"] == 0 and r["distance"] == 9]
    assert [a["prompt"] for a in again] == [r["prompt"] for r in same], \
        "a run with fewer facts and distances repeats the same prompts"
    # the same prompts, read through a cache of another length: float32 sums in another order
    # (a few 1e-6 nats), so the scores agree to rounding, not bit for bit
    assert torch.allclose(torch.tensor([a["margin"] for a in again]), torch.tensor([r["margin"] for r in same]), atol=1e-4)
    assert [(a["context"], a["weights"]) for a in again] == [(r["context"], r["weights"]) for r in same]


def test_conflict_trials_bad_input(smollm):
    model, tok = smollm
    f = FACTS[:1]
    for kwargs, match in ((dict(distances=[]), "distances"), (dict(distances=5), "distances"),
                          (dict(distances=[-1]), "distances"), (dict(distances=[4], draws=0), "draws"),
                          (dict(distances=[4], pool=[]), "pool"), (dict(distances=[5000]), "filler pool holds")):
        args = {"pool": POOL, **kwargs}
        with pytest.raises(ValueError, match=match):
            conflict_trials(model, tok, f, [" Rome"], **args)
    with pytest.raises(ValueError, match="one false answer per fact"):
        conflict_trials(model, tok, f, [], [4], POOL)


def test_distance_sample():
    fs = list(FACTS[:10])
    assert distance_sample(fs, 20) == fs
    pick = distance_sample(fs, 4, seed=1)
    assert len(pick) == 4 and pick == distance_sample(fs, 4, seed=1) and pick == [f for f in fs if f in pick]
    with pytest.raises(ValueError, match="positive int"):
        distance_sample(fs, 0)
    with pytest.raises(ValueError, match="unknown configuration keys"):
        distance_run(model=object(), tokenizer=None, config={"distance": 3})


def config_of(command: str) -> dict:
    """The configuration that a recorded ``wmlib conflict ...`` command line runs with today's code."""
    import shlex

    from wmlib.cli import build_parser
    from wmlib.cli.conflict import _config

    words = shlex.split(command)
    assert words[:2] == ["wmlib", "conflict"], command
    return _config(build_parser().parse_args(words[1:]))


def test_conflict_command_configuration():
    assert config_of("wmlib conflict") == json.loads(json.dumps(DISTANCE_RUN))
    c = config_of("wmlib conflict --facts 3 --distances 0,64 --draws 2 --chat-template on --json /tmp/x.json")
    assert (c["facts"], c["distances"], c["draws"], c["chat_template"]) == (3, [0, 64], 2, "on")
    assert DISTANCE_RUN["distances"] != [0, 64], "the defaults are not changed by a command"
    from wmlib.cli import build_parser
    for bad in (["--distances", "a,b"], ["--distances", "-4"], ["--draws", "0"], ["--facts", "0"]):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["conflict", *bad])


@pytest.mark.slow
def test_conflict_command_runs(tmp_path, capsys):
    from wmlib.cli import main

    out = tmp_path / "c.json"
    assert main(["conflict", "--facts", "2", "--distances", "0,16", "--draws", "1", "--json", str(out)]) == 0
    assert "distance    16 tokens: the context wins" in capsys.readouterr().out
    run = json.loads(out.read_text())
    assert run["config"]["distances"] == [0, 16] and len(run["facts"]) == 2 and len(run["trials"]) == 2 * 2
    assert {(r["fact"], r["distance"]) for r in run["trials"]} == {(0, 0), (1, 0), (0, 16), (1, 16)}


def test_recorded_distance_run_matches_what_its_command_runs_today():
    """wmlib/results/ch02_distance.json was made by its recorded command with today's code
    (rerun `wmlib conflict --json wmlib/results/ch02_distance.json` after changing DISTANCE_RUN)."""
    from wmlib import results

    run = results.load("ch02_distance")
    assert run["config"] == config_of(run["command"])
    assert run["config"] == json.loads(json.dumps(DISTANCE_RUN)), "the chapter reads the record as the default run"
    n = len(run["facts"])
    assert n == min(run["n_known"], DISTANCE_RUN["facts"]) and len(run["false_answers"]) == n
    assert len(run["trials"]) == n * DISTANCE_RUN["draws"] * len(DISTANCE_RUN["distances"])
    assert {r["distance"] for r in run["trials"]} == set(DISTANCE_RUN["distances"])
    assert all(r["tokens"] >= r["distance"] for r in run["trials"])
