"""Two fake language models that check the probes themselves: an oracle and a coin.

A benchmark whose best possible score is not 1.0, or whose chance level is not where it says,
cannot tell "the model fails" from "the probe is broken". Both models here read text through a
character-level tokenizer (:func:`char_tokenizer`) and plug into :class:`~wmlib.probes.ProbeLM`
like any causal LM, so they go through the same prompts, batching and scoring as a real model:

- :class:`OracleLM` answers from the prompt perfectly: it decodes the conversation, asks the
  task's reference solver (:meth:`Task.solve`, which sees only the text) for the reply, and puts
  all its probability on the reply's next character. Every task must score 1.0 with it;
- :class:`RandomLM` ignores the prompt and draws its logits at random (seeded by the input), so
  greedy answers are wrong and forced choices are coin flips: exact match at ~0, d' at ~0.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import torch
from torch import nn

__all__ = ["char_tokenizer", "OracleLM", "RandomLM", "CHAT_TEMPLATE"]

CHAT_TEMPLATE = (
    "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant] {% endif %}"
)


def char_tokenizer(chat_template: str | None = CHAT_TEMPLATE):
    """A Hugging Face tokenizer with one token per printable ASCII character (and newline)."""
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


class _Past:
    """What a fake model keeps between calls: the ids it has read, per row."""

    def __init__(self, ids: torch.Tensor):
        self.ids = ids


class _FakeLM(nn.Module):
    def __init__(self, tokenizer, max_positions: int = 1 << 16):
        super().__init__()
        self.tokenizer = tokenizer
        self.vocab_size = len(tokenizer)
        self.config = SimpleNamespace(max_position_embeddings=max_positions, vocab_size=self.vocab_size)
        self._anchor = nn.Parameter(torch.zeros(1))  # so that .parameters() names a device and dtype

    def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None, use_cache=None,
                logits_to_keep=0, **kwargs):
        from transformers.modeling_outputs import CausalLMOutputWithPast

        ids = input_ids.cpu()
        if past_key_values is not None:
            ids = torch.cat([past_key_values.ids, ids], dim=1)
        keep = input_ids.shape[1] if not logits_to_keep else int(logits_to_keep)
        mask = attention_mask.cpu() if attention_mask is not None and past_key_values is None else None
        logits = torch.zeros(ids.shape[0], keep, self.vocab_size)
        for row in range(ids.shape[0]):
            real = ids[row] if mask is None else ids[row][mask[row, -ids.shape[1]:].bool()]
            n = len(real)
            for j in range(keep):
                upto = n - keep + j + 1  # the position whose next token column j predicts
                if upto >= 1:
                    logits[row, j] = self.next_logits(real[:upto])
        return CausalLMOutputWithPast(logits=logits.to(input_ids.device),
                                      past_key_values=_Past(ids) if use_cache else None)

    def next_logits(self, ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


_TURN = re.compile(r"(?:^|\n)\[(user|assistant)\] ")


def parse_conversation(text: str) -> tuple[list, str | None]:
    """``"[user] hi\\n[assistant] he"`` -> ([{"role": "user", "content": "hi"}], "he"): the finished
    turns and the reply being written (None when the text does not end inside a reply)."""
    marks = list(_TURN.finditer(text))
    turns = [(m.group(1), text[m.end():(marks[i + 1].start() if i + 1 < len(marks) else len(text))])
             for i, m in enumerate(marks)]
    if not turns or turns[-1][0] != "assistant":
        return [{"role": r, "content": c} for r, c in turns], None
    *done, (_, reply) = turns
    return [{"role": r, "content": c.removesuffix("\n")} for r, c in done], reply


class OracleLM(_FakeLM):
    """Answers every prompt of ``task`` perfectly, from the prompt alone (through ``task.solve``)."""

    def __init__(self, task, tokenizer=None, max_positions: int = 1 << 16):
        super().__init__(tokenizer or char_tokenizer(), max_positions)
        if not self.tokenizer.chat_template:
            raise ValueError("the oracle reads conversations through a chat template; give the tokenizer one")
        self.task = task
        self._solved: dict[str, str] = {}

    def next_logits(self, ids):
        text = self.tokenizer.decode(ids.tolist(), skip_special_tokens=True)
        messages, reply = parse_conversation(text)
        out = torch.full((self.vocab_size,), -30.0)
        if reply is None or not messages:
            out[self.tokenizer.eos_token_id] = 30.0
            return out
        key = repr(messages)
        if key not in self._solved:
            self._solved[key] = self.task.solve(messages)
        full = self._solved[key]
        if full.startswith(reply) and len(full) > len(reply):
            out[self.tokenizer.convert_tokens_to_ids(full[len(reply)])] = 30.0
        else:
            out[self.tokenizer.eos_token_id] = 30.0
        return out


class RandomLM(_FakeLM):
    """Ignores the prompt: logits drawn from a normal distribution seeded by ``seed`` and the input."""

    def __init__(self, tokenizer=None, seed: int = 0, max_positions: int = 1 << 16):
        super().__init__(tokenizer or char_tokenizer(), max_positions)
        self.seed = seed

    def next_logits(self, ids):
        g = torch.Generator().manual_seed(hash((self.seed, tuple(ids.tolist()))) & 0x7FFF_FFFF)
        return torch.randn(self.vocab_size, generator=g)
