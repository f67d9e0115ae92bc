"""wmlib.icl: prompt formats, label scoring with a shared prefix, calibration.

The scoring tests use a tiny random Llama (fast) with SmolLM2's real tokenizer (whose BPE merges
are what the prompt-splitting logic must respect)."""

import pytest
import torch

from wmlib import icl
from wmlib.icl import (
    ICLRun, PromptFormat, build_prompt, calibrate, content_free_logprobs, demonstration_prefix,
    evaluate_icl, label_logprobs, label_token_ids, sample_demonstrations,
)

WORDS = ["negative", "positive"]


@pytest.fixture(scope="module")
def tokenizer():
    from wmlib.models import load_causal_lm

    return load_causal_lm("smollm2-135m")[1]


@pytest.fixture(scope="module")
def tiny_llama(tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024)
    return LlamaForCausalLM(config).eval()


# ------------------------------------------------------------------------------ prompt format
def test_prompt_format_is_exact():
    demos = [("a fine film", 1), ("dull", 0)]
    p = build_prompt(demos, "  what a mess ", WORDS)
    assert p == ("Review: a fine film\nSentiment: positive\n\n"
                 "Review: dull\nSentiment: negative\n\n"
                 "Review: what a mess\nSentiment:")
    assert build_prompt([], "ok", WORDS) == "Review: ok\nSentiment:"
    assert demonstration_prefix([], WORDS) == ""
    fmt = PromptFormat(input_prefix="Text: ", output_prefix="Label:", separator="\n", instruction="Classify.")
    assert build_prompt(demos[:1], "x", ["bad", "good"], fmt) == "Classify.\nText: a fine film\nLabel: good\nText: x\nLabel:"


def test_prefix_is_the_prompt_before_the_query():
    demos = [("a", 0), ("b", 1), ("c", 1)]
    assert build_prompt(demos, "q", WORDS).startswith(demonstration_prefix(demos, WORDS))


@pytest.mark.parametrize("demos, error, match", [
    ([("good", 2)], ValueError, "labels are indices 0..1"),
    ([("good", True)], ValueError, "label True"),
    ([("good",)], TypeError, "pair"),
    ([("   ", 1)], ValueError, "demonstration text is empty"),
    ([(3, 1)], TypeError, "must be a str"),
])
def test_bad_demonstrations_are_named(demos, error, match):
    with pytest.raises(error, match=match):
        demonstration_prefix(demos, WORDS)


def test_label_tokens(tokenizer):
    ids = label_token_ids(tokenizer, WORDS)
    assert [tokenizer.decode([i]) for i in ids] == [" negative", " positive"]
    assert len(set(label_token_ids(tokenizer, ["foo", "bar"]))) == 2
    with pytest.raises(ValueError, match="tokens for this tokenizer"):
        label_token_ids(tokenizer, ["supercalifragilistic", "positive"])
    with pytest.raises(ValueError, match="same token"):
        label_token_ids(tokenizer, ["good", "good"])
    with pytest.raises(ValueError, match="surrounding spaces"):
        label_token_ids(tokenizer, [" good", "bad"])
    with pytest.raises(ValueError, match="at least two"):
        label_token_ids(tokenizer, "positive")


def test_shared_tokens_respect_bpe_merges(tokenizer):
    """SmolLM2 writes a final '\\n\\n' as one token but '\\n\\nReview' as three: the shared prefix
    must come from the whole prompts, not from tokenizing the prefix alone."""
    prefix = demonstration_prefix([("nice", 1)], WORDS)
    alone = tokenizer(prefix)["input_ids"]
    prompts = [prefix + PromptFormat().query(q) for q in ["good", "a long and winding review"]]
    shared, rests = icl._split_tokens(tokenizer, prompts)
    for p, r in zip(prompts, rests):
        assert shared + r == tokenizer(p)["input_ids"] and len(r) >= 1
    assert alone != shared[:len(alone)]  # tokenized alone, the prefix ends differently: the merge is real


# ------------------------------------------------------------------------------------ scoring
def _reference(model, tokenizer, prompt, words):
    ids = torch.tensor([tokenizer(prompt)["input_ids"]])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0, -1].float(), -1)
    return logp[label_token_ids(tokenizer, words)]


@pytest.mark.parametrize("batch_size", [1, 3, 16])
@pytest.mark.parametrize("k", [0, 2])
def test_batched_cached_scores_equal_one_forward_pass_per_prompt(tiny_llama, tokenizer, batch_size, k):
    demos = [("a delight from start to finish", 1), ("tedious", 0)][:k]
    queries = ["good", "one of the worst films of the year , and the longest", "meh .", "a small , quiet gem"]
    prefix = demonstration_prefix(demos, WORDS)
    got = label_logprobs(tiny_llama, tokenizer, prefix, queries, WORDS, batch_size=batch_size)
    assert got.shape == (4, 2)
    want = torch.stack([_reference(tiny_llama, tokenizer, build_prompt(demos, q, WORDS), WORDS) for q in queries])
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()


def test_scoring_rejects_bad_input(tiny_llama, tokenizer):
    with pytest.raises(TypeError, match="not one string"):
        label_logprobs(tiny_llama, tokenizer, "", "good", WORDS)
    with pytest.raises(ValueError, match="no queries"):
        label_logprobs(tiny_llama, tokenizer, "", [], WORDS)
    with pytest.raises(ValueError, match="batch_size"):
        label_logprobs(tiny_llama, tokenizer, "", ["good"], WORDS, batch_size=0)


def test_calibration_divides_by_the_content_free_probabilities():
    p = torch.tensor([[0.7, 0.3], [0.9, 0.1], [0.4, 0.6]])
    cf = torch.tensor([0.8, 0.2])
    got = calibrate(p.log(), cf.log()).exp()
    want = (p / cf) / (p / cf).sum(-1, keepdim=True)
    assert torch.allclose(got, want, atol=1e-6)
    assert got.argmax(-1).tolist() == [1, 0, 1]  # the bias towards label 0 is removed
    # a content-free distribution that is uniform changes nothing
    assert torch.equal(calibrate(p.log(), torch.tensor([0.5, 0.5]).log()).argmax(-1), p.argmax(-1))
    # unnormalised log-probabilities (over the whole vocabulary) give the same answer
    assert torch.allclose(calibrate(p.log() - 3.0, cf.log()).exp(), want, atol=1e-6)
    with pytest.raises(ValueError, match="content_free"):
        calibrate(p.log(), torch.zeros(3))


def test_content_free_and_evaluate(tiny_llama, tokenizer):
    demos = [("great", 1), ("awful", 0)]
    prefix = demonstration_prefix(demos, WORDS)
    cf = content_free_logprobs(tiny_llama, tokenizer, prefix, WORDS)
    assert cf.shape == (2,) and torch.isclose(cf.exp().sum(), torch.tensor(1.0))
    texts, labels = ["fine", "bad", "superb", "boring"], [1, 0, 1, 0]
    run = evaluate_icl(tiny_llama, tokenizer, demos, texts, labels, WORDS)
    assert isinstance(run, ICLRun) and run.k == 2
    assert run.accuracy == (run.predictions == torch.tensor(labels)).float().mean().item()
    assert 0 <= run.predicted_share(1) <= 1 and 0 <= run.calibrated_accuracy <= 1
    shared, _ = icl._split_tokens(tokenizer, [build_prompt(demos, t, WORDS) for t in texts])
    assert run.prefix_tokens == len(shared) > 0  # the demonstrations and the "Review:" every query starts with
    assert run.prompt_tokens == sum(len(tokenizer(build_prompt(demos, t, WORDS))["input_ids"]) for t in texts) / 4
    no_cf = evaluate_icl(tiny_llama, tokenizer, demos, texts, labels, WORDS, calibrate=False)
    with pytest.raises(ValueError, match="content-free"):
        no_cf.calibrated_accuracy
    with pytest.raises(ValueError, match="as many labels"):
        evaluate_icl(tiny_llama, tokenizer, demos, texts, labels[:2], WORDS)


def test_sample_demonstrations_is_seeded():
    texts, labels = [f"t{i}" for i in range(50)], [i % 2 for i in range(50)]
    a = sample_demonstrations(texts, labels, 8, torch.Generator().manual_seed(1))
    b = sample_demonstrations(texts, labels, 8, torch.Generator().manual_seed(1))
    assert a == b and len({t for t, _ in a}) == 8
    assert all(labels[texts.index(t)] == y for t, y in a)
    assert sample_demonstrations(texts, labels, 0, torch.Generator()) == []
    with pytest.raises(ValueError, match="between 0 and 50"):
        sample_demonstrations(texts, labels, 51, torch.Generator())


# ------------------------------------------------------------------- chat template, multi-token words
def test_chat_template_prompts_put_the_output_prefix_in_the_reply(tokenizer):
    demos = [("a fine film", 1)]
    prefix = demonstration_prefix(demos, WORDS)
    plain = icl.prompt_ids(tokenizer, prefix, ["dull"], chat_template="off")[0]
    assert tokenizer.decode(plain) == build_prompt(demos, "dull", WORDS)
    chat = tokenizer.decode(icl.prompt_ids(tokenizer, prefix, ["dull"], chat_template="on")[0])
    assert chat.startswith("<|im_start|>") and chat.endswith("<|im_start|>assistant\nSentiment:")
    assert "Review: a fine film\nSentiment: positive\n\nReview: dull<|im_end|>" in chat
    with pytest.raises(TypeError, match="not one string"):
        icl.prompt_ids(tokenizer, prefix, "dull")
    with pytest.raises(ValueError, match="chat_template must be"):
        icl.prompt_ids(tokenizer, prefix, ["dull"], chat_template="sometimes")


def test_chat_template_scores_equal_one_forward_pass(tiny_llama, tokenizer):
    demos = [("a delight from start to finish", 1), ("tedious", 0)]
    queries = ["good", "one of the worst films of the year", "meh ."]
    prefix = demonstration_prefix(demos, WORDS)
    got = label_logprobs(tiny_llama, tokenizer, prefix, queries, WORDS, batch_size=2, chat_template="on")
    ids = icl.prompt_ids(tokenizer, prefix, queries, chat_template="on")
    with torch.no_grad():
        want = torch.stack([torch.log_softmax(tiny_llama(torch.tensor([p])).logits[0, -1].float(), -1)[
            label_token_ids(tokenizer, WORDS)] for p in ids])
    assert torch.allclose(got, want, atol=1e-5)


def test_multi_token_label_words_are_scored_as_continuations(tiny_llama, tokenizer):
    words = ["dreadful", "supercalifragilistic"]
    conts = icl.label_continuations(tokenizer, words)
    assert len(conts[1]) > 1 and not icl.single_token_labels(tokenizer, words)
    assert icl.single_token_labels(tokenizer, WORDS)
    demos = [("fine", 1)]
    queries = ["good", "a long and dull film"]
    got = label_logprobs(tiny_llama, tokenizer, demonstration_prefix(demos, words), queries, words)
    for i, q in enumerate(queries):
        prompt = tokenizer(build_prompt(demos, q, words))["input_ids"]
        for j, c in enumerate(conts):
            with torch.no_grad():
                logp = torch.log_softmax(tiny_llama(torch.tensor([prompt + c])).logits[0].float(), -1)
            want = sum(logp[len(prompt) - 1 + t, c[t]] for t in range(len(c)))
            assert torch.isclose(got[i, j], want, atol=1e-4), (i, j, got[i, j], want)
    with pytest.raises(ValueError, match="tokenize to the same"):
        icl.label_continuations(tokenizer, ["good", "good"])


# ------------------------------------------------------------------------------- the study
def test_study_conditions_and_demonstrations():
    cfg = icl.ICLStudyConfig(n_eval=8, ks=(0, 2, 4), draws=2, k_random=4, k_order=2, orders=2, k_words=2,
                             word_draws=1, k_template=4, template_draws=1)
    conds = icl.study_conditions(cfg, has_template=True)
    names = [c["name"] for c in conds]
    assert len(names) == len(set(names)) and "k0" in names and "other-template/k4/d0" in names
    assert not any(n.startswith("other-template/k2") for n in names)  # the template is compared at k_template
    assert not any(n.startswith("other-template") for n in (c["name"] for c in icl.study_conditions(cfg, False)))
    texts, labels = [f"text {i}" for i in range(40)], [i % 2 for i in range(40)]
    by = {c["name"]: c for c in conds}
    k2, k4 = (icl.study_demonstrations(cfg, by[n], texts, labels) for n in ("k2/d0", "k4/d0"))
    assert k4[:2] == k2  # draws are nested in k
    rand = icl.study_demonstrations(cfg, by["random/k4/d0"], texts, labels)
    assert [t for t, _ in rand] == [t for t, _ in k4]  # same inputs, labels redrawn
    order = next(c for c in conds if c["order"] is not None)
    assert sorted(icl.study_demonstrations(cfg, order, texts, labels)) == sorted(k2)
    for bad in [dict(ks=(1, 4)), dict(k_random=3), dict(k_template=8), dict(orders=7, k_order=2), dict(word_draws=9),
                dict(chat_template="maybe"), dict(n_eval=0)]:
        with pytest.raises(ValueError):
            icl.ICLStudyConfig(**bad)


def test_study_correct_reads_predictions():
    results = {"labels": "0110", "conditions": {"a": {"pred": "0100", "pred_calibrated": "0110"}}}
    assert icl.study_correct(results, "a").tolist() == [True, True, False, True]
    assert icl.study_correct(results, "a", calibrated=True).all()
    with pytest.raises(KeyError, match="no condition 'b'"):
        icl.study_correct(results, "b")


@pytest.mark.parametrize("name", ["icl_sst2", "icl_sst2_plain"])
def test_recorded_study_matches_the_code(name):
    """wmlib/results/icl_sst2*.json hold, for every condition their configuration defines, the condition
    the code defines today (their command lines are checked in tests/test_cli_icl.py)."""
    from wmlib import results

    if name not in results.names():
        pytest.skip(f"no recorded ICL study {name} yet")
    rec = results.load(name)
    cfg = icl.ICLStudyConfig(**rec["config"])
    assert rec["complete"] and rec["model"] == "smollm2-135m" and rec["dtype"] == "float32"
    assert rec["chat_template_main"] == (name == "icl_sst2")  # the plain-text twin writes no template
    if name == "icl_sst2_plain" and "icl_sst2" in results.names():  # the same study, the template aside
        main = results.load("icl_sst2")
        assert {k: v for k, v in rec["config"].items() if k != "chat_template"} == \
            {k: v for k, v in main["config"].items() if k != "chat_template"} and rec["labels"] == main["labels"]
    want = icl.study_conditions(cfg, has_template=True)
    assert [c["name"] for c in want] == list(rec["conditions"])
    for c in want:
        got = rec["conditions"][c["name"]]
        assert {k: got[k] for k in c if k != "name"} == {k: v for k, v in c.items() if k != "name"}
        assert len(got["pred"]) == len(got["pred_calibrated"]) == len(rec["labels"]) == cfg.n_eval
