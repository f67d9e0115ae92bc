"""wmlib.knowledge: the fact set, teacher-forced scoring (checked against generate), override rates."""

import pytest
import torch

from wmlib.knowledge import (FACTS, RELATIONS, counterfactual_answers, counterfactual_prompt, facts,
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
