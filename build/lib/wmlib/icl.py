"""In-context learning as classification (Chapter 12).

A causal language model classifies a sentence "in context" when its prompt holds a few labelled
examples (demonstrations) followed by the sentence to classify::

    Review: a gorgeous , witty , seductive movie .
    Sentiment: positive

    Review: the story is lame
    Sentiment: negative

    Review: <the sentence to classify>
    Sentiment:

Rather than letting the model write an answer (a 135M model often rambles), we read its
next-token distribution after ``Sentiment:`` and compare the log-probabilities of the label words
(" positive" vs " negative"): the prediction is the label word it finds most likely. The pieces:

- :class:`PromptFormat` and :func:`build_prompt` write prompts; :func:`demonstration_prefix` is the
  part shared by every query of one experiment, so its KV cache is computed once
  (:func:`label_logprobs`);
- :func:`label_token_ids` checks that each label word is a single, distinct token;
- :func:`label_logprobs` scores many queries in batches: log p(label word | prompt), shape (N, C);
- :func:`content_free_logprobs` and :func:`calibrate` implement contextual calibration
  (Zhao et al., 2021): divide by the label probabilities the prompt gives a content-free input
  such as "N/A", which measures the prompt's own bias towards each label;
- :func:`evaluate_icl` runs one experiment and returns an :class:`ICLRun` (accuracies, label bias,
  tokens per query).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch


__all__ = [
    "PromptFormat", "build_prompt", "demonstration_prefix", "label_token_ids", "label_logprobs",
    "content_free_logprobs", "calibrate", "sample_demonstrations", "ICLRun", "evaluate_icl",
    "CONTENT_FREE_INPUTS",
]

# The content-free inputs of Zhao et al. (2021): strings that carry no sentiment at all.
CONTENT_FREE_INPUTS = ("N/A", "", "[MASK]")


@dataclass(frozen=True)
class PromptFormat:
    """How one example is written. A demonstration is
    ``f"{input_prefix}{text}\\n{output_prefix} {label_word}"``, a query the same without the label
    word, examples are joined by ``separator``, and ``instruction`` (if any) comes first."""

    input_prefix: str = "Review: "
    output_prefix: str = "Sentiment:"
    separator: str = "\n\n"
    instruction: str = ""

    def demonstration(self, text: str, label_word: str) -> str:
        return f"{self.input_prefix}{_clean(text, 'demonstration text')}\n{self.output_prefix} {label_word}"

    def query(self, text: str) -> str:
        return f"{self.input_prefix}{_clean(text, 'query text', allow_empty=True)}\n{self.output_prefix}"


def _clean(text, what: str, allow_empty: bool = False) -> str:
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a str, got {type(text).__name__}: {text!r}")
    text = text.strip()
    if not text and not allow_empty:
        raise ValueError(f"{what} is empty")
    return text


def _check_demos(demos, label_words) -> list[tuple[str, int]]:
    out = []
    for i, demo in enumerate(demos):
        if not (isinstance(demo, (tuple, list)) and len(demo) == 2):
            raise TypeError(f"demonstration {i} must be a pair (text, label index), got {demo!r}")
        text, label = demo
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(label_words):
            raise ValueError(f"demonstration {i} has label {label!r}; labels are indices 0..{len(label_words) - 1} "
                             f"into the label words {list(label_words)}")
        out.append((text, label))
    return out


def demonstration_prefix(demos: Sequence[tuple[str, int]], label_words: Sequence[str],
                         fmt: PromptFormat = PromptFormat()) -> str:
    """Everything a prompt holds before its query: the instruction and the demonstrations, each
    followed by the separator. ``demos`` are ``(text, label index)`` pairs; ``label_words[i]`` is
    the word written for label ``i``."""
    parts = [fmt.instruction] if fmt.instruction else []
    parts += [fmt.demonstration(text, label_words[y]) for text, y in _check_demos(demos, label_words)]
    return "".join(p + fmt.separator for p in parts)


def build_prompt(demos: Sequence[tuple[str, int]], query: str, label_words: Sequence[str],
                 fmt: PromptFormat = PromptFormat()) -> str:
    """The full prompt: :func:`demonstration_prefix` followed by the query, ending with the
    output prefix (``"Sentiment:"``), where the model's next token is read."""
    return demonstration_prefix(demos, label_words, fmt) + fmt.query(query)


def label_token_ids(tokenizer, label_words: Sequence[str]) -> list[int]:
    """The token id of each label word as it follows the output prefix (with a leading space).

    Each label word must be one token, and the words must differ: then one forward pass gives the
    probability of every label at once. Raises a ValueError naming the offending word otherwise.
    """
    if isinstance(label_words, str) or len(label_words) < 2:
        raise ValueError(f"label_words must be a sequence of at least two words, got {label_words!r}")
    ids = []
    for word in label_words:
        if not isinstance(word, str) or not word.strip() or word != word.strip():
            raise ValueError(f"label word {word!r} must be a non-empty word without surrounding spaces "
                             "(the prompt supplies the space)")
        toks = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
        if len(toks) != 1:
            pieces = [tokenizer.decode([t]) for t in toks]
            raise ValueError(f"label word {word!r} is {len(toks)} tokens for this tokenizer ({pieces}); "
                             "choose label words that are single tokens")
        ids.append(toks[0])
    if len(set(ids)) != len(ids):
        raise ValueError(f"label words {list(label_words)} map to the same token ids {ids}")
    return ids


def _split_tokens(tokenizer, prompts: Sequence[str]) -> tuple[list[int], list[list[int]]]:
    """The token ids all prompts share at the start, and each prompt's remaining ids.

    Each prompt is tokenized whole, so the model sees exactly the tokenization of the full
    string (tokenizing the shared text on its own can differ at the boundary: SmolLM2's tokenizer
    writes a final "\\n\\n" as one token but "\\n\\nReview" as three). Every prompt keeps at
    least one token of its own.
    """
    from . import lm

    encoded = [lm.encode(tokenizer, p) for p in prompts]
    shared = min(len(ids) for ids in encoded) - 1
    first = encoded[0]
    for ids in encoded[1:]:
        n = 0
        while n < shared and ids[n] == first[n]:
            n += 1
        shared = n
    return first[:shared], [ids[shared:] for ids in encoded]


@torch.no_grad()
def label_logprobs(model, tokenizer, prefix: str, queries: Sequence[str], label_words: Sequence[str],
                   fmt: PromptFormat = PromptFormat(), batch_size: int = 16, desc: str | None = None) -> torch.Tensor:
    """log p(label word | prefix + query) for every query and label: a float tensor (N, C).

    ``prefix`` is the shared part of the prompts (:func:`demonstration_prefix`). The tokens all
    prompts share are read once and their keys and values (the KV cache) reused by every query
    (:func:`wmlib.lm.next_token_logprobs`), so a query costs only its own tokens. The
    log-probabilities are over the whole vocabulary, so they need not sum to 1 over the labels.
    """
    from . import lm

    if isinstance(queries, str):
        raise TypeError("queries must be a sequence of strings, not one string; wrap it: [query]")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    label_ids = label_token_ids(tokenizer, label_words)
    if len(queries) == 0:
        raise ValueError("no queries to score")
    prefix_ids, rests = _split_tokens(tokenizer, [prefix + fmt.query(q) for q in queries])
    return lm.next_token_logprobs(model, rests, pad_token_id=lm.pad_id(tokenizer), token_ids=label_ids,
                                  prefix=prefix_ids, max_batch=batch_size, desc=desc)


def content_free_logprobs(model, tokenizer, prefix: str, label_words: Sequence[str],
                          fmt: PromptFormat = PromptFormat(),
                          inputs: Sequence[str] = CONTENT_FREE_INPUTS) -> torch.Tensor:
    """The prompt's bias: log of the label probabilities it gives content-free inputs, each
    renormalised over the labels and then averaged over ``inputs`` (Zhao et al., 2021). Shape (C,)."""
    lp = label_logprobs(model, tokenizer, prefix, list(inputs), label_words, fmt, batch_size=len(inputs))
    p = torch.softmax(lp, dim=-1).mean(0)
    return p.log()


def calibrate(logprobs: torch.Tensor, content_free: torch.Tensor) -> torch.Tensor:
    """Contextual calibration: label probabilities (renormalised over the labels) divided by the
    content-free ones, then renormalised. ``logprobs`` (N, C), ``content_free`` (C,) -> (N, C)
    log-probabilities. A prompt that pushes every input towards "positive" gives the content-free
    input a high p(positive) too, and dividing by it removes that push."""
    if logprobs.dim() != 2 or content_free.shape != logprobs.shape[-1:]:
        raise ValueError(f"calibrate needs logprobs (N, C) and content_free (C,); got {tuple(logprobs.shape)} "
                         f"and {tuple(content_free.shape)}")
    return torch.log_softmax(torch.log_softmax(logprobs, -1) - content_free, dim=-1)


def sample_demonstrations(texts: Sequence[str], labels: Sequence[int], k: int,
                          generator: torch.Generator) -> list[tuple[str, int]]:
    """``k`` demonstrations ``(text, label)`` drawn at random without replacement (their labels
    are whatever the draw gives, as in Zhao et al. 2021: not balanced)."""
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    if not isinstance(k, int) or not 0 <= k <= len(texts):
        raise ValueError(f"k must be an int between 0 and {len(texts)}, got {k!r}")
    idx = torch.randperm(len(texts), generator=generator)[:k].tolist()
    return [(texts[i], int(labels[i])) for i in idx]


@dataclass
class ICLRun:
    """The outcome of one in-context classification experiment on N queries and C labels."""

    k: int
    logprobs: torch.Tensor  # (N, C) log p(label word | prompt)
    content_free: torch.Tensor | None  # (C,) the prompt's bias, or None when not measured
    labels: torch.Tensor  # (N,) the true labels
    prompt_tokens: float  # mean tokens of a full prompt (demonstrations + query)
    prefix_tokens: int  # tokens of the shared demonstrations

    @property
    def predictions(self) -> torch.Tensor:
        return self.logprobs.argmax(-1)

    @property
    def calibrated_predictions(self) -> torch.Tensor:
        if self.content_free is None:
            raise ValueError("this run has no content-free measurement; use evaluate_icl(..., calibrate=True)")
        return calibrate(self.logprobs, self.content_free).argmax(-1)

    @property
    def accuracy(self) -> float:
        return (self.predictions == self.labels).float().mean().item()

    @property
    def calibrated_accuracy(self) -> float:
        return (self.calibrated_predictions == self.labels).float().mean().item()

    def predicted_share(self, label: int = 1, calibrated: bool = False) -> float:
        """Fraction of queries predicted as ``label`` (0.5 on a balanced set means no label bias)."""
        pred = self.calibrated_predictions if calibrated else self.predictions
        return (pred == label).float().mean().item()


def evaluate_icl(model, tokenizer, demos: Sequence[tuple[str, int]], texts: Sequence[str],
                 labels: Sequence[int], label_words: Sequence[str], fmt: PromptFormat = PromptFormat(),
                 calibrate: bool = True, batch_size: int = 16, desc: str | None = None) -> ICLRun:
    """Classify ``texts`` with the demonstrations ``demos`` in context; see :class:`ICLRun`."""
    if len(texts) != len(labels) or len(texts) == 0:
        raise ValueError(f"need as many labels as texts, and at least one; got {len(texts)} texts and "
                         f"{len(labels)} labels")
    prefix = demonstration_prefix(demos, label_words, fmt)
    lp = label_logprobs(model, tokenizer, prefix, texts, label_words, fmt, batch_size=batch_size, desc=desc)
    cf = content_free_logprobs(model, tokenizer, prefix, label_words, fmt) if calibrate else None
    from . import lm

    prefix_tokens = len(lm.encode(tokenizer, prefix)) if prefix else 0
    lengths = [len(lm.encode(tokenizer, prefix + fmt.query(t))) for t in texts]
    return ICLRun(len(demos), lp, cf, torch.as_tensor(list(labels)), sum(lengths) / len(lengths), prefix_tokens)
