"""wmlib.probes: prompt construction, scoring, determinism and context limits.

Most tests use a tiny random Llama with a character-level tokenizer, built here, so they run in
seconds and need no download. One test checks the packaged SmolLM2 on an easy needle.
"""

import json
import random
import re

import pytest
import torch

from wmlib.cli import main
from wmlib.probes import (
    ContextTooLong, ProbeLM, ProbeResult, binary_scores, check_scores_in_unit_interval, format_scores,
    roc_auc, run_digit_span, run_lost_in_the_middle, run_n_back, run_needle, run_probe, settings_for,
    span_from_curve,
)
from wmlib.probes.digit_span import digit_sequence, span_prompt
from wmlib.probes.lost_in_the_middle import kv_prompt, position_index, random_id
from wmlib.probes.n_back import LETTERS, nback_prompt, nback_trial, zero_back_trial
from wmlib.probes.needle import haystack_sentences, needle_item

CHAT_TEMPLATE = (
    "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant] {% endif %}"
)


def tiny_tokenizer(chat_template=None):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = [chr(i) for i in range(32, 127)] + ["\n"]
    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2, **{c: i + 3 for i, c in enumerate(chars)}}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex("[\\s\\S]"), behavior="isolated")
    tk.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    tok.chat_template = chat_template
    return tok


def tiny_model(vocab_size, max_positions=2048, seed=0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_positions,
                         pad_token_id=0, eos_token_id=1, bos_token_id=1)
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def tiny():
    tok = tiny_tokenizer(CHAT_TEMPLATE)
    return ProbeLM(tiny_model(len(tok)), tok, name="tiny-llama", device="cpu")


@pytest.fixture(scope="module")
def tiny_plain():
    tok = tiny_tokenizer(None)
    return ProbeLM(tiny_model(len(tok)), tok, name="tiny-plain", device="cpu")


# ---------------------------------------------------------------------------------- the LM wrapper
def test_chat_template_is_used_when_present(tiny, tiny_plain):
    assert tiny.use_chat_template and not tiny_plain.use_chat_template
    assert tiny.render("hello", "Answer:") == "[user] hello\n[assistant] Answer:"
    assert tiny_plain.render("hello", "Answer:") == "hello\nAnswer:"
    assert tiny.tokenizer.decode(tiny.prompt_ids("hi", "A:")) == "[user] hi\n[assistant] A:"
    with pytest.raises(ValueError, match="no chat template"):
        ProbeLM(tiny_plain.model, tiny_plain.tokenizer, use_chat_template=True)


def test_greedy_match_is_what_generate_writes(tiny):
    """Teacher-forced greedy match must agree with model.generate(do_sample=False)."""
    prompts = [tiny.prompt_ids(u, "A:") for u in ("abc", "a much longer prompt here", "xyz 123")]
    answers = []
    for p in prompts:
        ids = torch.tensor([p])
        out = tiny.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=4,
                                  do_sample=False, pad_token_id=0)
        answers.append(out[0, len(p):].tolist())
    scored = tiny.score_answers(prompts, answers)
    assert all(s.correct and s.token_accuracy == 1.0 for s in scored)
    wrong = [a[:-1] + [(a[-1] + 1) % len(tiny.tokenizer)] for a in answers]  # last token changed
    scored = tiny.score_answers(prompts, wrong)
    assert not any(s.correct for s in scored) and all(s.token_accuracy == 0.75 for s in scored)


def test_left_padding_does_not_change_scores(tiny):
    """Scores of a prompt are the same alone and in a padded batch with longer prompts."""
    prompts = [tiny.prompt_ids("x" * n, "A:") for n in (3, 40, 17)]
    answers = [tiny.encode(" 42"), tiny.encode(" 7"), tiny.encode(" 123")]
    batched = tiny.score_answers(prompts, answers)
    for p, a, b in zip(prompts, answers, batched):
        alone = tiny.score_answers([p], [a])[0]
        assert alone.correct == b.correct
        assert alone.logprob == pytest.approx(b.logprob, abs=1e-4)


def test_token_budget_changes_batches_not_scores(tiny):
    """A tiny token budget splits the prompts into many batches (wmlib.lm.batches_by_tokens, tested
    in test_lm.py) and must give the same scores as one big batch."""
    small = ProbeLM(tiny.model, tiny.tokenizer, batch_tokens=50, max_batch=2)
    prompts = [small.encode(t) for t in ["one two three", "a", "the cat sat on the mat today", "x y"]]
    answers = [small.encode(t) for t in [" four", " b", " again", " z w"]]
    a = small.score_answers(prompts, answers)
    b = tiny.score_answers(prompts, answers)
    assert [x.predicted for x in a] == [x.predicted for x in b]
    assert all(abs(x.logprob - y.logprob) < 1e-4 for x, y in zip(a, b))


def test_choose_matches_answer_logprobs(tiny):
    prompts = [tiny.prompt_ids(u, "Answer:") for u in ("is it?", "maybe")]
    single = tiny.choose(prompts, [" y", " n"])  # one token each: one forward pass
    for i, p in enumerate(prompts):
        for j, c in enumerate([" y", " n"]):
            whole = tiny.score_answers([p], [tiny.encode(c)])[0].logprob
            assert single[i, j].item() == pytest.approx(whole, abs=1e-4)
    # spellings of one answer add their probabilities
    grouped = tiny.choose(prompts, [[" y", " Y"], [" n", " N"]])
    y_and_Y = tiny.choose(prompts, [" y", " Y"])
    assert torch.allclose(grouped[:, 0], torch.logsumexp(y_and_Y, dim=-1), atol=1e-5)
    multi = tiny.choose(prompts, [" yes", " no"])  # several tokens: scored as whole answers
    assert multi.shape == (2, 2) and torch.isfinite(multi).all()
    with pytest.raises(ValueError, match="at least two"):
        tiny.choose(prompts, [" yes"])
    with pytest.raises(ValueError, match="same tokens"):
        tiny.choose(prompts, [" yes", " yes"])


# ---------------------------------------------------------------------------------- context limits
def test_context_limit_errors():
    tok = tiny_tokenizer(CHAT_TEMPLATE)
    model = tiny_model(len(tok), max_positions=256)
    lm = ProbeLM(model, tok, name="short-model")
    assert lm.context_limit == 256
    with pytest.raises(ContextTooLong, match=r"needle \(context_length=400\).*256.*max_position_embeddings"):
        run_needle(lm, context_lengths=[400], depths=[0.5], trials=1)
    with pytest.raises(ContextTooLong, match="exceeds the model's own limit of 256"):
        ProbeLM(model, tok, max_context=1000)
    capped = ProbeLM(model, tok, max_context=100)
    with pytest.raises(ContextTooLong, match=r"lost in the middle \(n_pairs=20\).*100.*--max-context"):
        run_lost_in_the_middle(capped, n_pairs=[20], positions=[0.0], trials=1)
    with pytest.raises(ContextTooLong, match=r"digit span \(length=90\)"):
        run_digit_span(capped, lengths=[90], trials=1)
    with pytest.raises(ValueError, match="positive int"):
        ProbeLM(model, tok, max_context=0)


# ---------------------------------------------------------------------------------- the probes
def test_needle_item_places_the_needle(tiny):
    for depth in (0.0, 0.5, 1.0):
        item = needle_item(tiny, 300, depth, random.Random(3))
        doc = item["user"].split("\n\nQuestion:")[0]
        sentences = re.split(r"(?<=\.) ", doc)
        code = item["answer"].strip(" .")
        where = [i for i, s in enumerate(sentences) if code in s]
        assert len(where) == 1 and sentences[where[0]].startswith("The secret code for the")
        if depth == 0.0:
            assert where[0] == 0
        if depth == 1.0:
            assert where[0] == len(sentences) - 1
        assert 250 <= item["document_tokens"] <= 300  # the document fills the requested length
        assert item["prefix"] in sentences[where[0]] and re.fullmatch(r" \d{5}\.", item["answer"])
    item = needle_item(tiny, 300, 0.5, random.Random(4), distractors=3)
    doc = item["user"].split("\n\nQuestion:")[0]
    needles = re.findall(r"The secret code for the (\w+) vault is (\d{5})\.", doc)
    assert len(needles) == 4 and len({c for c, _ in needles}) == 4 and len({n for _, n in needles}) == 4
    asked = item["prefix"].split()[-3]
    assert (asked, item["answer"].strip(" .")) in needles
    stream = haystack_sentences(random.Random(0))
    filler = " ".join(next(stream) for _ in range(200))
    assert not re.search(r"\d|secret|code", filler)
    with pytest.raises(ValueError, match="depth"):
        needle_item(tiny, 300, 1.5, random.Random(0))


def test_needle_runs_deterministically(tiny):
    a = run_needle(tiny, context_lengths=[64, 128], depths=[0.0, 1.0], trials=2, seed=5)
    b = run_needle(tiny, context_lengths=[64, 128], depths=[0.0, 1.0], trials=2, seed=5)
    c = run_needle(tiny, context_lengths=[64, 128], depths=[0.0, 1.0], trials=2, seed=6)
    assert a.scores == b.scores and a.examples == b.examples
    assert a.examples != c.examples
    assert set(a.scores) == {"64", "128"} and set(a.scores["64"]) == {"0", "1"}
    check_scores_in_unit_interval(a.scores)
    assert a.settings["chat_template"] is True


def test_kv_prompt_and_positions():
    rng = random.Random(0)
    uuid = random_id(rng)
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", uuid)
    assert re.fullmatch(r"[0-9a-f]{6}", random_id(rng, 6))
    pairs = [(random_id(rng, 4), random_id(rng, 4)) for _ in range(5)]
    user, prefix, answer = kv_prompt(pairs, 3)
    assert json.loads(user.split("JSON data:\n")[1].split("\n\nKey:")[0]) == dict(pairs)
    assert answer == pairs[3][1] + '"' and pairs[3][0] in prefix and f'Key: "{pairs[3][0]}"' in user
    assert [position_index(f, 11) for f in (0, 0.5, 1)] == [0, 5, 10]
    with pytest.raises(ValueError, match="outside"):
        kv_prompt(pairs, 5)


def test_lost_in_the_middle_moves_one_pair(tiny):
    r = run_lost_in_the_middle(tiny, n_pairs=[6], positions=[0.0, 1.0], trials=2, id_length=4, seed=1)
    assert set(r.scores) == {"accuracy", "first_token_accuracy", "token_accuracy"}
    assert set(r.scores["accuracy"]["6"]) == {"0", "1"}
    check_scores_in_unit_interval(r.scores)
    first, last = r.examples[0], r.examples[1]
    assert first["answer"] == last["answer"]  # the same pair, moved from first to last place
    again = run_lost_in_the_middle(tiny, n_pairs=[6], positions=[0.0, 1.0], trials=2, id_length=4, seed=1)
    assert again.scores == r.scores and again.examples == r.examples


@pytest.mark.parametrize("n", [1, 2, 3])
def test_nback_trials_have_the_kind_asked_for(n):
    rng = random.Random(n)
    for _ in range(50):
        t = nback_trial(n, 8, "target", rng)
        assert t[-1] == t[-1 - n] and len(t) == 8 and set(t) <= set(LETTERS)
        lure = nback_trial(n, 8, "lure", rng)
        near = [lure[-1 - k] for k in (n - 1, n + 1) if k >= 1]
        assert lure[-1] != lure[-1 - n] and lure[-1] in near
        plain = nback_trial(n, 8, "nontarget", rng)
        assert plain[-1] != plain[-1 - n] and plain[-1] not in [plain[-1 - k] for k in (n - 1, n + 1) if k >= 1]
    seq, cue = zero_back_trial(6, "target", rng)
    assert cue == seq[-1]
    seq, cue = zero_back_trial(6, "lure", rng)
    assert cue != seq[-1] and cue in seq
    seq, cue = zero_back_trial(6, "nontarget", rng)
    assert cue not in seq
    assert "Is the last letter (B) the letter K?" in nback_prompt(list("CDB"), 0, "K")[0]
    user, prefix = nback_prompt(list("BCDB"), 3)
    assert "B\nC\nD\nB" in user and "3 positions before" in user and prefix == "Answer:"
    with pytest.raises(ValueError, match="length"):
        nback_trial(3, 4, "target", rng)


def test_nback_scores_are_chance_aware(tiny):
    r = run_n_back(tiny, ns=[0, 1, 2], trials=8, length=6, seed=0)
    assert set(r.scores) == {"0", "1", "2"}
    for s in r.scores.values():
        assert {"accuracy", "balanced_accuracy", "f1", "auc", "discrimination", "lure_false_alarm_rate"} <= set(s)
    check_scores_in_unit_interval(r.scores)
    assert run_n_back(tiny, ns=[0, 1, 2], trials=8, length=6, seed=0).scores == r.scores


def test_binary_scores_and_auc():
    labels = [True, True, False, False]
    always_no = binary_scores([False] * 4, labels)
    assert always_no["accuracy"] == 0.5 and always_no["balanced_accuracy"] == 0.5
    assert always_no["f1"] == 0.0 and always_no["discrimination"] == 0.0
    perfect = binary_scores(labels, labels)
    assert perfect == {"accuracy": 1.0, "balanced_accuracy": 1.0, "f1": 1.0, "hit_rate": 1.0,
                       "false_alarm_rate": 0.0, "discrimination": 1.0}
    # 3 negatives, 1 positive: always "no" gets 75 % accuracy but chance-level balanced accuracy
    skewed = binary_scores([False] * 4, [True, False, False, False])
    assert skewed["accuracy"] == 0.75 and skewed["balanced_accuracy"] == 0.5
    assert roc_auc([3, 2, 1, 0], labels) == 1.0 and roc_auc([0, 1, 2, 3], labels) == 0.0
    assert roc_auc([1, 1, 1, 1], labels) == 0.5
    with pytest.raises(ValueError, match="positive and one negative"):
        roc_auc([1, 2], [True, True])
    with pytest.raises(ValueError, match="labels"):
        binary_scores([True], [True, False])


def test_digit_span_prompt_and_span():
    rng = random.Random(0)
    seq = digit_sequence(12, rng)
    assert len(seq) == 12 and all(a != b for a, b in zip(seq, seq[1:]))
    user, prefix, answer = span_prompt([4, 1, 7], "forward")
    assert "4, 1, 7" in user and answer == " 4, 1, 7." and prefix == "The digits are:"
    assert span_prompt([4, 1, 7], "backward")[2] == " 7, 1, 4."
    assert span_prompt([4, 1, 7], "forward", " ")[2] == " 4 1 7."
    with pytest.raises(ValueError, match="order"):
        span_prompt([1], "sideways")
    assert span_from_curve([3, 4, 5, 6], [1.0, 1.0, 0.0, 0.0]) == 4.5
    assert span_from_curve([3, 5, 7], [1.0, 0.75, 0.25]) == 6.0
    assert span_from_curve([3, 5], [1.0, 1.0]) == 5.0  # never fails: a lower bound
    assert span_from_curve([3, 4], [0.0, 0.0]) == 2.5  # fails from the start
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        span_from_curve([3], [1.5])


def test_digit_span_runs(tiny_plain):
    r = run_digit_span(tiny_plain, lengths=[2, 4], trials=3, seed=0)
    assert set(r.scores["accuracy"]) == {"2", "4"} and "span" in r.summary
    assert 0 <= r.summary["first_digit_right"] <= 1 and 0 <= r.summary["first_digit_is_the_lists_first"] <= 1
    check_scores_in_unit_interval(r.scores)
    back = run_digit_span(tiny_plain, lengths=[2, 4], trials=3, order="backward", seed=0)
    assert back.settings["order"] == "backward"


def test_scores_checker_and_table():
    check_scores_in_unit_interval({"a": {"b": 0.5, "c": 1}})
    for bad, msg in (({"a": 1.5}, "outside"), ({"a": "x"}, "number"), ({}, "empty"), ({"a": float("nan")}, "outside")):
        with pytest.raises(ValueError, match=msg):
            check_scores_in_unit_interval(bad)
    table = format_scores({"128": {"0": 1.0, "0.5": 0.5}, "256": {"0": 0.25, "0.5": 0.0}}, "length")
    assert "length" in table and "0.50" in table and "0.25" in table
    nested = format_scores({"accuracy": {"10": {"0": 1.0}}, "token_accuracy": {"10": {"0": 0.5}}})
    assert "accuracy" in nested and "token_accuracy" in nested


def test_run_probe_by_name(tiny):
    r = run_probe("digit-span", model=tiny, quick=True, lengths=[2], trials=2)
    assert isinstance(r, ProbeResult) and r.probe == "digit-span" and r.model == "tiny-llama"
    assert settings_for("needle", quick=True)["context_lengths"] != settings_for("needle")["context_lengths"]
    with pytest.raises(ValueError, match="unknown probe"):
        run_probe("stroop", model=tiny)
    with pytest.raises(ValueError, match="no setting"):
        run_probe("needle", model=tiny, lenghts=[3])


# ---------------------------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """The tiny model saved as a local checkpoint, loadable by path like a hub model."""
    path = tmp_path_factory.mktemp("tiny-llama")
    tok = tiny_tokenizer(CHAT_TEMPLATE)
    tiny_model(len(tok)).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.mark.parametrize("probe,settings", [
    ("needle", {"context_lengths": [48], "depths": [0.0, 1.0], "trials": 1}),
    ("lost-in-the-middle", {"n_pairs": [3], "positions": [0.0, 1.0], "trials": 1, "id_length": 4}),
    ("n-back", {"ns": [1, 2], "trials": 4, "length": 5}),
    ("digit-span", {"lengths": [2, 3], "trials": 2}),
])
def test_cli_writes_json_with_scores_in_unit_interval(probe, settings, tiny_dir, tmp_path, capsys):
    out = tmp_path / f"{probe}.json"
    code = main(["probe", probe, "--model", str(tiny_dir), "--quick", "--seed", "3", "--device", "cpu",
                 "--set", json.dumps(settings), "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert {"probe", "model", "scores"} <= set(result)
    assert result["probe"] == probe and result["model"] == str(tiny_dir)
    check_scores_in_unit_interval(result["scores"])
    assert result["settings"]["seed"] == 3 and result["seconds_total"] > 0
    printed = capsys.readouterr().out
    assert probe in printed and "time:" in printed


def test_cli_lists_every_probe():
    from wmlib.cli.probe import PROBE_NAMES
    from wmlib.probes import PROBES

    assert PROBE_NAMES == list(PROBES)


def test_cli_reports_context_errors(tiny_dir, capsys):
    code = main(["probe", "needle", "--model", str(tiny_dir), "--device", "cpu", "--max-context", "100",
                 "--set", '{"context_lengths": [200], "depths": [0.5], "trials": 1}'])
    assert code == 2
    err = capsys.readouterr().err
    assert "needle (context_length=200)" in err and "100" in err
    assert main(["probe", "needle", "--model", str(tiny_dir), "--set", "[1]"]) == 2
    assert main(["probe", "stroop"]) == 2
    assert "invalid choice: 'stroop'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- the real model
@pytest.mark.slow
def test_smollm_finds_an_easy_needle():
    """SmolLM2-135M-Instruct copies a 5-digit code out of a short haystack (the chapter's finding)."""
    lm = ProbeLM.load("smollm2-135m", device="cpu")
    r = run_needle(lm, context_lengths=[128], depths=[0.0, 1.0], trials=1, seed=0)
    assert r.scores == {"128": {"0": 1.0, "1": 1.0}}
