"""wmlib.digit_span: Chapter 1's digit-span test (copy vs recall), scored by exact match and alignment."""

import pytest

from wmlib import digit_span as ds


@pytest.mark.parametrize("target, answer, ops", [
    ("12345", "12345", {}),
    ("12345", "1245", {"omission": 1}),  # one dropped digit is one error, not a wrong tail
    ("12345", "123945", {"insertion": 1}),
    ("12345", "12945", {"substitution": 1}),
    ("12345", "13245", {"transposition": 1}),
    ("12345", "", {"omission": 5}),
    ("", "12", {"insertion": 2}),
])
def test_alignment_names_the_errors(target, answer, ops):
    counts = ds.error_counts(target, answer)
    assert {k: v for k, v in counts.items() if v} == ops
    assert ds.edit_distance(target, answer) == sum(ops.values())


def test_similarity_is_not_fooled_by_a_shift():
    target, answer = "1234567890", "134567890"  # the 2 dropped
    positional = sum(x == y for x, y in zip(target, answer)) / len(target)
    assert positional == 0.1 and ds.similarity(target, answer) == pytest.approx(0.9)
    assert ds.similarity("123", "123") == 1.0 and ds.similarity("123", "") == 0.0
    assert ds.similarity("123", "456789") == 0.0


def test_alignment_rebuilds_both_strings():
    import random

    rng = random.Random(0)
    for _ in range(200):
        t = "".join(rng.choice("0123") for _ in range(rng.randint(0, 9)))
        a = "".join(rng.choice("0123") for _ in range(rng.randint(0, 9)))
        ops = ds.align(t, a)
        assert "".join(x for _, x, _ in ops) == t and "".join(y for _, _, y in ops) == a
        assert ds.edit_distance(t, a) <= max(len(t), len(a))


def test_failure_kinds():
    assert ds.classify_failure("123", "123") is None
    assert ds.classify_failure("123", "") == "no digits"
    assert ds.classify_failure("5555", "72955") == "a worked example intrudes"
    assert ds.classify_failure("7291", "7291") is None  # a target that starts like an example is no intrusion
    assert ds.classify_failure("1234567890", "1234545454545") == "a loop"
    assert ds.classify_failure("1234567890", "123456789") == "one slip"
    assert ds.classify_failure("1234567890", "1243567809") == "several errors"
    assert set(ds.FAILURE_KINDS) >= {ds.classify_failure("12", x) for x in ("", "72", "13", "9")}


def test_answer_digits_reads_the_first_line():
    assert ds.answer_digits(" 0631958\nDigits: 12") == "0631958"
    assert ds.answer_digits("\n 0 6, 3\n9") == "063"
    assert ds.answer_digits("no digits") == ""
    with pytest.raises(TypeError, match="reply must be a str"):
        ds.answer_digits(None)


def test_bad_input_is_explained():
    with pytest.raises(ValueError, match="digits only"):
        ds.align("12a", "12")
    with pytest.raises(TypeError, match="str of digits"):
        ds.edit_distance(123, "12")
    with pytest.raises(ValueError, match="target is empty"):
        ds.similarity("", "1")


@pytest.mark.parametrize("family", ["llama", "qwen3", "gpt_neox"])  # BOS + single digits; no BOS + grouped; merged
def test_prompts_locate_the_digits_by_characters(tiny_lm, family):
    from wmlib import lm

    _, tok = tiny_lm(family)
    fillers = ["Mary moved to the bathroom.", "John went to the hallway.", "Sandra journeyed to the office."]
    for condition in ds.CONDITIONS:
        p = ds.span_prompt(tok, "0631958", condition, fillers)
        assert p.text.endswith("Repeat:") and p.text[slice(*p.digit_chars)] == "0631958"
        assert p.ids[:len(lm.special_prefix(tok))] == lm.special_prefix(tok)
        covered = tok.decode(p.ids[slice(*p.digit_tokens)])
        assert "0631958" in covered and len(covered) <= len("0631958") + 2  # the digits, at most a space around
        assert (condition == "recall") == ("bathroom" in p.text)
        assert p.distance >= (10 if condition == "recall" else 1)
    ids = ds.span_prompt(tok, "123", "copy", chat_template="on").ids if tok.chat_template else None
    assert ids is None or "<|im_start|>" in tok.decode(ids)


def test_span_prompt_bad_input(tiny_lm):
    _, tok = tiny_lm("llama")
    with pytest.raises(ValueError, match="condition must be one of"):
        ds.span_prompt(tok, "123", "reverse")
    with pytest.raises(ValueError, match="at least one digit"):
        ds.span_prompt(tok, "", "copy")
    with pytest.raises(ValueError, match="digits only"):
        ds.span_prompt(tok, "12 3", "copy")
    with pytest.raises(ValueError, match="needs 3 filler texts"):
        ds.span_prompt(tok, "123", "recall", ["one text"])
    with pytest.raises(ValueError, match="without digits"):
        ds.span_prompt(tok, "123", "recall", ["a", "b", "room 101"])


@pytest.mark.parametrize("family", ["llama", "qwen3"])
def test_run_trials_pairs_the_conditions(tiny_lm, family):
    model, tok = tiny_lm(family)
    fillers = ["Mary moved to the bathroom.", "John went to the hallway.", "Sandra journeyed to the office."]
    trials = ds.run_trials(model, tok, [3, 5], 2, filler_sentences=fillers, seed=1)
    assert len(trials) == 2 * 2 * 2
    copy = [t for t in trials if t.condition == "copy"]
    recall = [t for t in trials if t.condition == "recall"]
    assert [t.target for t in copy] == [t.target for t in recall]
    assert all(len(t.target) == t.length and t.target.isdigit() for t in trials)
    assert all(t.distance > c.distance for t, c in zip(recall, copy))
    assert all(0.0 <= t.similarity <= 1.0 and t.exact == (t.kind is None) for t in trials)
    assert [t.target for t in ds.run_trials(model, tok, [3, 5], 2, filler_sentences=fillers, seed=1)] == \
        [t.target for t in trials]  # deterministic
    with pytest.raises(ValueError, match="filler sentences"):
        ds.run_trials(model, tok, [3], 1, filler_sentences=["7 up."])
    with pytest.raises(ValueError, match="lengths must be positive ints"):
        ds.run_trials(model, tok, [0], 1, conditions=("copy",))
    with pytest.raises(ValueError, match="n_trials"):
        ds.run_trials(model, tok, [3], 0, conditions=("copy",))
    with pytest.raises(ValueError, match="conditions must be"):
        ds.run_trials(model, tok, [3], 1, conditions=("write",))
