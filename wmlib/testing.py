"""Tiny random-initialised language models of every decoder family the book supports, built offline.

The book's chapters promise to run on any supported model by changing one parameter. To check that
promise without a download, :func:`build_tiny_model` builds, from its configuration alone, a causal
LM of each family with a few hundred thousand random weights, and saves it with a small tokenizer
as a local model folder that ``wmlib.models.load_causal_lm(path)`` (and ``--model PATH`` on the
command line) loads like any checkpoint::

    from wmlib.testing import tiny_model
    path = tiny_model("qwen3")  # built once into the wmlib cache, then reused
    # papermill chapters/ch07_kv_cache.ipynb out.ipynb -p QUICK True -p MODEL "$path"

The models know nothing (their outputs are nearly random), so they test mechanisms (a cache that
reproduces ``generate``, a mask, a tokenizer without BOS), never behaviour. Each family keeps what
makes it different from Llama, at a small size:

========== ===================================================================================
llama      SmolLM2 / Llama: grouped-query attention, RoPE, RMSNorm, SwiGLU
mistral    Llama plus a sliding attention window (16 tokens here, so short texts cross it)
qwen2      biases on the query, key and value projections
qwen3      RMSNorm on each query and key head (q/k norms); head_dim unrelated to the width
gemma2     scaled embeddings, four norms per block, query_pre_attn_scalar, soft-capped attention
           and final logits, sliding-window and global layers alternating
gemma3     Gemma 2 with q/k norms instead of soft-capping, and a second RoPE base for local layers
gpt_neox   Pythia: fused query/key/value projection, RoPE on a quarter of each head, LayerNorm,
           parallel residual (attention and MLP read the same input)
========== ===================================================================================

Their tokenizers cover the cases that break token arithmetic: with a beginning-of-sequence token
(llama, mistral, gemma) and without one (qwen, gpt_neox); one token per digit (llama, mistral,
qwen2, gemma) or digits grouped (qwen3 in runs of up to three, as Llama 3 does; gpt_neox by
learned merges, as Pythia's byte-level BPE does); a chat template (llama, qwen, gemma3) or none.
Some ship a hub-like ``generation_config`` (sampling, a repetition penalty) so that "identical to
``generate``" fails unless the caller asks for plain greedy decoding.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

__all__ = ["FAMILIES", "TOKENIZERS", "build_tokenizer", "build_tiny_model", "tiny_model", "training_text"]

FAMILIES = ("llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "gpt_neox")
VERSION = 1  # bump when what build_tiny_model writes changes (the cache key of tiny_model)

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
GEMMA_CHAT = ("{{ bos_token }}{% for m in messages %}<start_of_turn>"
              "{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n{{ m['content'] }}<end_of_turn>\n"
              "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")

# Per family: does the tokenizer add a BOS token, how it writes digits, its chat template.
TOKENIZERS = {
    "llama": dict(bos=True, digits="single", chat=CHATML),
    "mistral": dict(bos=True, digits="single", chat=None),
    "qwen2": dict(bos=False, digits="single", chat=CHATML),
    "qwen3": dict(bos=False, digits="grouped", chat=CHATML),
    "gemma2": dict(bos=True, digits="single", chat=None),
    "gemma3": dict(bos=True, digits="single", chat=GEMMA_CHAT),
    "gpt_neox": dict(bos=False, digits="merged", chat=None),
}

_WORDS = ("Mary John Sandra Daniel moved went travelled journeyed to the bathroom hallway kitchen garden office "
          "bedroom . The secret number is Remember it What ? a an of and in on at for with that this was "
          "memory model token attention cache key value query head layer sentence text story question answer "
          "read write keep forget first last next before after again copy repeat digits number list "
          "film movie good bad great funny boring story actor plot scene is it not very too").split()


def training_text(seed: int = 0, sentences: int = 600) -> str:
    """A small deterministic English-like text with many numbers, to train the tiny tokenizers."""
    rng = random.Random(seed)
    lines = []
    for _ in range(sentences):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 12))]
        lines.append(" ".join(words).capitalize() + ".")
        if rng.random() < 0.5:  # numbers of every length, as digit-span and needle tasks write them
            n = rng.randint(0, 10 ** rng.randint(1, 7))
            lines.append(rng.choice([f"The secret number is {n}.", f"Digits: {' '.join(str(n))}.",
                                     f"Repeat: {n}", f"{n} and {rng.randint(0, 999)}"]))
    # every run of one to three digits, so that a tokenizer grouping digits learns each as one token
    lines += [" ".join(f"{i:0{w}d}" for i in range(10 ** w)) for w in (1, 2, 3)]
    return "\n".join(lines)


def build_tokenizer(bos: bool = True, digits: str = "single", chat: str | None = None, vocab_size: int | None = None):
    """A small byte-level BPE tokenizer, trained deterministically on :func:`training_text`.

    ``bos``: prepend ``<s>`` to every encoded text (as Llama and Gemma do) or not (Qwen, Pythia);
    ``digits``: ``"single"`` (one token per digit), ``"grouped"`` (runs of up to three digits, as
    Llama 3 does) or ``"merged"`` (digits left to the BPE merges, as GPT-2 and Pythia do);
    ``chat``: a Jinja chat template or None; ``vocab_size``: at most this many tokens (default: 2048
    for grouped digits, room for every run of one to three digits, as in Llama 3; 640 otherwise).
    Returns a ``PreTrainedTokenizerFast``.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if digits not in ("single", "grouped", "merged"):
        raise ValueError(f"digits must be 'single', 'grouped' or 'merged', got {digits!r}")
    vocab_size = vocab_size or (2048 if digits == "grouped" else 640)
    if not isinstance(vocab_size, int) or not 300 <= vocab_size <= 65536:
        raise ValueError(f"vocab_size must be an int in [300, 65536], got {vocab_size!r}")
    specials = ["<|endoftext|>", "<s>", "<|im_start|>", "<|im_end|>", "<start_of_turn>", "<end_of_turn>"]
    tk = Tokenizer(models.BPE())
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if digits == "single":
        tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
    elif digits == "grouped":
        runs = pre_tokenizers.Split(Regex(r"\p{N}{1,3}"), behavior="isolated")
        tk.pre_tokenizer = pre_tokenizers.Sequence([runs, byte_level])
    else:
        tk.pre_tokenizer = byte_level
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator(training_text().splitlines(), trainer=trainer)
    post = [processors.ByteLevel(trim_offsets=False)]
    if bos:
        post.append(processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                  special_tokens=[("<s>", tk.token_to_id("<s>"))]))
    tk.post_processor = processors.Sequence(post)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<s>" if bos else None, eos_token="<|endoftext|>",
        pad_token="<|endoftext|>", model_max_length=2048,
        additional_special_tokens=specials[2:])
    if chat is not None:
        tok.chat_template = chat
    return tok


def _config(family: str, vocab_size: int, bos_id: int | None, eos_id: int):
    """The configuration of a tiny model of ``family``: 4 layers, width 64, 4 query heads."""
    from transformers import (Gemma2Config, Gemma3TextConfig, GPTNeoXConfig, LlamaConfig, MistralConfig,
                              Qwen2Config, Qwen3Config)

    common = dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                  num_attention_heads=4, max_position_embeddings=2048, bos_token_id=bos_id,
                  eos_token_id=eos_id, pad_token_id=eos_id, initializer_range=0.1)
    gqa = dict(num_key_value_heads=2)
    if family == "llama":
        return LlamaConfig(**common, **gqa, tie_word_embeddings=True)
    if family == "mistral":
        return MistralConfig(**common, **gqa, sliding_window=16, tie_word_embeddings=False)
    if family == "qwen2":
        return Qwen2Config(**common, **gqa, tie_word_embeddings=True)
    if family == "qwen3":
        return Qwen3Config(**common, **gqa, head_dim=32, tie_word_embeddings=True)
    alternate = ["sliding_attention", "full_attention"] * 2
    if family == "gemma2":
        return Gemma2Config(**common, **gqa, head_dim=24, query_pre_attn_scalar=20, sliding_window=12,
                            layer_types=alternate, attn_logit_softcapping=5.0, final_logit_softcapping=3.0)
    if family == "gemma3":
        return Gemma3TextConfig(**common, **gqa, head_dim=24, query_pre_attn_scalar=20, sliding_window=12,
                                layer_types=alternate)
    if family == "gpt_neox":
        return GPTNeoXConfig(**common, rotary_pct=0.25, use_parallel_residual=True, tie_word_embeddings=False)
    raise ValueError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")


# What a hub checkpoint of the family may ship: generate() must not follow it when asked for greedy decoding.
_GENERATION = {
    "qwen2": dict(do_sample=True, temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.05),
    "qwen3": dict(do_sample=True, temperature=0.6, top_p=0.95, top_k=20),
    "gpt_neox": dict(repetition_penalty=1.3),
}


def build_tiny_model(family: str, path: str | Path, seed: int = 0) -> Path:
    """Build a tiny random-initialised causal LM of ``family`` and save it with its tokenizer in
    ``path`` (a folder, created or overwritten). Returns the path.

    Every weight is random, norms included (a norm left at exactly 1 would hide a missing norm),
    drawn from ``seed``: the same call always writes the same model.
    """
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    from .models import _quiet_transformers

    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    _quiet_transformers()  # no progress bars on stderr
    path = Path(path)
    tok = build_tokenizer(**TOKENIZERS[family])
    bos_id = tok.convert_tokens_to_ids("<s>")
    config = _config(family, len(tok), bos_id, tok.eos_token_id)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:  # Gemma's norms scale by (1 + weight); the others by weight
                base = 0.0 if family.startswith("gemma") and name.endswith("weight") else float(name.endswith("weight"))
                p.copy_(base + 0.2 * torch.randn(p.shape, generator=g))
    model.generation_config = GenerationConfig(bos_token_id=bos_id, eos_token_id=tok.eos_token_id,
                                               pad_token_id=tok.eos_token_id, **_GENERATION.get(family, {}))
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    (path / "wmlib_tiny.json").write_text(json.dumps({"family": family, "seed": seed, "version": VERSION}))
    return path


def tiny_model(family: str, seed: int = 0) -> Path:
    """The folder of a tiny model of ``family`` in the wmlib cache, built on first use."""
    import transformers

    from .data import cache_root

    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose one of {', '.join(FAMILIES)}")
    target = cache_root() / "tiny-models" / f"{family}-s{seed}-v{VERSION}-tf{transformers.__version__}"
    if not (target / "wmlib_tiny.json").exists():
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        build_tiny_model(family, tmp, seed)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first: keep its copy
            shutil.rmtree(tmp, ignore_errors=True)
    return target
