"""wmlib.lm: one scorer and one greedy generator, checked against plain forward passes and generate.

Tiny random models (a Llama and a GPT-NeoX) with SmolLM2's real tokenizer: what matters is that
padding, positions, the shared-prefix cache and the generation config change nothing."""

import pytest
import torch

from wmlib import lm


@pytest.fixture(scope="module")
def tokenizer():
    from wmlib.models import load_causal_lm

    return load_causal_lm("smollm2-135m")[1]


def _llama(vocab):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2,
                                        max_position_embeddings=512)).eval()


def _neox(vocab):
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(1)
    return GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                            num_attention_heads=4, rotary_pct=0.25, max_position_embeddings=512)).eval()


@pytest.fixture(scope="module", params=["llama", "gpt-neox"])
def model(request, tokenizer):
    return {"llama": _llama, "gpt-neox": _neox}[request.param](len(tokenizer))


def _reference_logprobs(model, seq):
    with torch.no_grad():
        return torch.log_softmax(model(torch.tensor([seq])).logits[0].float(), -1)


def test_scores_equal_a_plain_forward_pass_with_and_without_padding(model, tokenizer):
    prompts = [lm.encode(tokenizer, t) for t in ["The capital of France is", "Hi", "One two three four five six"]]
    conts = [lm.encode(tokenizer, t, prefix=False) for t in [" Paris", " there friend", " seven"]]
    pad = lm.pad_id(tokenizer)
    batched = lm.score_continuations(model, prompts, conts, pad_token_id=pad)
    alone = [lm.score_continuations(model, [p], [c], pad_token_id=pad) for p, c in zip(prompts, conts)]
    for i, (p, c) in enumerate(zip(prompts, conts)):
        ref = _reference_logprobs(model, p + c)
        lp = ref[len(p) - 1: len(p) + len(c) - 1]
        expected = lp.gather(-1, torch.tensor(c)[:, None]).sum()
        assert torch.allclose(batched.logprob[i], expected, atol=1e-4)
        assert torch.allclose(alone[i].logprob[0], expected, atol=1e-4)
        top = lp.argmax(-1).tolist()
        assert batched.predicted[i] == top and bool(batched.greedy[i]) == (top == c)
        assert batched.n_tokens[i] == len(c)


def test_greedy_match_is_what_generate_writes(model, tokenizer):
    prompts = [lm.encode(tokenizer, t) for t in ["Mary moved to the", "The cat"]]
    written = lm.greedy_generate(model, prompts, 4, tokenizer=tokenizer, stop=False)
    s = lm.score_continuations(model, prompts, written, pad_token_id=lm.pad_id(tokenizer))
    assert s.greedy.all() and (s.token_accuracy == 1).all()
    # recomputation: argmax of a full forward pass, token by token
    for p, w in zip(prompts, written):
        seq = list(p)
        for _ in range(4):
            seq.append(int(_reference_logprobs(model, seq)[-1].argmax()))
        assert seq[len(p):] == w


def test_next_token_logprobs_with_a_shared_prefix_equal_full_prompts(model, tokenizer):
    prefix = lm.encode(tokenizer, "Review: great\nSentiment: positive\n\n")
    rests = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in
             ["Review: dull\nSentiment:", "Review: a long and winding road of a film\nSentiment:"]]
    labels = [tokenizer(" positive", add_special_tokens=False)["input_ids"][0],
              tokenizer(" negative", add_special_tokens=False)["input_ids"][0]]
    pad = lm.pad_id(tokenizer)
    cached = lm.next_token_logprobs(model, rests, pad_token_id=pad, prefix=prefix, token_ids=labels)
    whole = lm.next_token_logprobs(model, [prefix + r for r in rests], pad_token_id=pad, token_ids=labels)
    full_vocab = lm.next_token_logprobs(model, [prefix + r for r in rests], pad_token_id=pad)
    for i, r in enumerate(rests):
        ref = _reference_logprobs(model, prefix + r)[-1]
        assert torch.allclose(cached[i], ref[labels], atol=1e-4)
        assert torch.allclose(whole[i], ref[labels], atol=1e-4)
        assert torch.allclose(full_vocab[i], ref, atol=1e-4)


def test_generation_ignores_a_hub_generation_config(tokenizer):
    model = _llama(len(tokenizer))
    prompt = [lm.encode(tokenizer, "Repeat: a a a a a a")]
    plain = lm.greedy_generate(model, prompt, 6, tokenizer=tokenizer, stop=False)
    model.generation_config.repetition_penalty = 5.0  # what a hub config might ask for
    model.generation_config.do_sample = True
    model.generation_config.top_p = 0.5
    assert lm.greedy_generate(model, prompt, 6, tokenizer=tokenizer, stop=False) == plain
    assert model.generation_config.repetition_penalty == 5.0, "the model's own config is restored"


def test_generation_stops_after_eos_and_batches_like_alone(tokenizer):
    model = _llama(len(tokenizer))
    prompts = [lm.encode(tokenizer, t) for t in ["a b c", "a much longer prompt than the other one"]]
    together = lm.greedy_generate(model, prompts, 5, tokenizer=tokenizer, stop=False)
    alone = [lm.greedy_generate(model, [p], 5, tokenizer=tokenizer, stop=False)[0] for p in prompts]
    assert together == alone
    eos = tokenizer.eos_token_id
    out = lm.greedy_generate(model, prompts, 5, tokenizer=tokenizer)
    for o, full in zip(out, together):
        assert o == full[:len(o)] and (len(o) == 5 or o[-1] == eos)


def test_prompts_special_prefix_and_chat_template(tokenizer):
    assert lm.special_prefix(tokenizer) == []  # SmolLM2 under transformers 5 adds no BOS
    assert lm.encode(tokenizer, "hi") == tokenizer("hi", add_special_tokens=False)["input_ids"]
    assert lm.uses_chat_template(tokenizer, "auto") and not lm.uses_chat_template(tokenizer, "off")
    chat = lm.render_prompt(tokenizer, "What is 2+2?", "Answer:", "on")
    assert chat.startswith("<|im_start|>") and chat.endswith("<|im_start|>assistant\nAnswer:")
    assert lm.render_prompt(tokenizer, "What is 2+2?", "Answer:", "off") == "What is 2+2?\nAnswer:"
    assert lm.encode_prompt(tokenizer, "Q", "A", "on") == tokenizer(chat.replace("What is 2+2?", "Q").replace("Answer:", "A"),
                                                                     add_special_tokens=False)["input_ids"]
    with pytest.raises(ValueError, match="chat_template must be one of"):
        lm.uses_chat_template(tokenizer, "yes")


class _BosTokenizer:
    """A stand-in for a Llama-3-style tokenizer that puts a BOS token before every text."""

    def __init__(self, inner, bos):
        self.inner, self.bos = inner, bos

    def __call__(self, text, add_special_tokens=True, **kw):
        ids = self.inner(text, add_special_tokens=False, **kw)["input_ids"]
        return {"input_ids": ([self.bos] if add_special_tokens else []) + ids}


def test_special_prefix_follows_what_the_tokenizer_does(tokenizer):
    bos = _BosTokenizer(tokenizer, 1)
    assert lm.special_prefix(bos) == [1]
    assert lm.encode(bos, "hi") == [1] + tokenizer("hi", add_special_tokens=False)["input_ids"]
    assert lm.encode(bos, "hi", prefix=False) == tokenizer("hi", add_special_tokens=False)["input_ids"]


def test_character_offsets_locate_answers(tokenizer):
    text = "Digits: 3141592 then 27."
    ids, offsets = lm.encode_with_offsets(tokenizer, text)
    start = text.index("3141592")
    i, j = lm.token_span(offsets, start, start + 7)
    assert tokenizer.decode(ids[i:j]).strip() == "3141592"
    with pytest.raises(ValueError, match="start < end"):
        lm.token_span(offsets, 5, 5)


def test_batches_respect_the_token_budget():
    lengths = [10, 200, 30, 30, 5, 300]
    batches = lm.batches_by_tokens(lengths, batch_tokens=400, max_batch=3)
    assert sorted(i for b in batches for i in b) == list(range(6))
    for b in batches:
        assert len(b) <= 3 and (len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 400)


@pytest.mark.parametrize("call, match", [
    (lambda m, t: lm.score_continuations(m, [[1, 2]], [[3], [4]], pad_token_id=0), "pair them"),
    (lambda m, t: lm.score_continuations(m, [[1, 2]], [[]], pad_token_id=0), "has no tokens"),
    (lambda m, t: lm.score_continuations(m, [[1, 10**7]], [[3]], pad_token_id=0), "outside"),
    (lambda m, t: lm.score_continuations(m, [[1] * 600], [[3]], pad_token_id=0), "more than the model's context"),
    (lambda m, t: lm.next_token_logprobs(m, [], pad_token_id=0), "no prompts"),
    (lambda m, t: lm.greedy_generate(m, [[1, 2]], 0, tokenizer=t), "max_new_tokens"),
    (lambda m, t: lm.greedy_generate(m, [[1, 2], [3]], 2, tokenizer=t, return_cache=True), "exactly one prompt"),
])
def test_bad_input_is_named(tokenizer, call, match):
    with pytest.raises(ValueError, match=match):
        call(_llama(len(tokenizer)), tokenizer)


def test_score_candidates_equals_one_pair_at_a_time(model, tokenizer):
    prompts = [lm.encode(tokenizer, t) for t in ["The capital of France is", "A much longer prompt, with commas, is"]]
    cands = [[lm.encode(tokenizer, c, prefix=False) for c in cs] for cs in [[" Paris", " Rome in Italy"], [" here", " x"]]]
    pad = lm.pad_id(tokenizer)
    many = lm.score_candidates(model, prompts, cands, pad_token_id=pad)
    assert many.logprob.shape == (2, 2)
    for i, p in enumerate(prompts):
        for j, c in enumerate(cands[i]):
            one = lm.score_continuations(model, [p], [c], pad_token_id=pad)
            assert torch.allclose(many.logprob[i, j], one.logprob[0], atol=1e-4)
            assert bool(many.greedy[i, j]) == bool(one.greedy[0]) and many.predicted[i][j] == one.predicted[0]
    with pytest.raises(ValueError, match="same number"):
        lm.score_candidates(model, prompts, [[[5]], [[5], [6]]], pad_token_id=pad)
