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
    "PromptFormat", "build_prompt", "demonstration_prefix", "label_token_ids", "label_continuations",
    "single_token_labels", "prompt_ids", "label_logprobs",
    "content_free_logprobs", "calibrate", "sample_demonstrations", "ICLRun", "evaluate_icl",
    "CONTENT_FREE_INPUTS", "ICLStudyConfig", "WORDS", "WORD_SETS", "study_data", "study_conditions",
    "study_demonstrations", "run_icl_study", "study_correct",
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


def label_continuations(tokenizer, label_words: Sequence[str]) -> list[list[int]]:
    """The token ids of each label word as it follows the output prefix (with a leading space),
    one or more tokens per word, for tokenizers in which a label word is not a single token.
    The words must tokenize differently. Raises a ValueError naming the offending word otherwise."""
    if isinstance(label_words, str) or len(label_words) < 2:
        raise ValueError(f"label_words must be a sequence of at least two words, got {label_words!r}")
    out = []
    for word in label_words:
        if not isinstance(word, str) or not word.strip() or word != word.strip():
            raise ValueError(f"label word {word!r} must be a non-empty word without surrounding spaces "
                             "(the prompt supplies the space)")
        out.append(list(tokenizer(" " + word, add_special_tokens=False)["input_ids"]))
    if len({tuple(ids) for ids in out}) != len(out):
        raise ValueError(f"label words {list(label_words)} tokenize to the same ids {out}")
    return out


def single_token_labels(tokenizer, label_words: Sequence[str]) -> bool:
    """Whether every label word is one token (then one forward pass scores all labels at once)."""
    return all(len(ids) == 1 for ids in label_continuations(tokenizer, label_words))


def prompt_ids(tokenizer, prefix: str, queries: Sequence[str], fmt: PromptFormat = PromptFormat(),
               chat_template: str | bool = "off") -> list[list[int]]:
    """Token ids of every full prompt ``prefix + fmt.query(q)``, under the chat-template policy of
    :func:`wmlib.lm.render_prompt`: with a template, the instruction, demonstrations and the query
    form one user turn and the model's reply starts with the output prefix (``Sentiment:``), so the
    label word follows it exactly as in the plain prompt."""
    from . import lm

    if isinstance(queries, str):
        raise TypeError("queries must be a sequence of strings, not one string; wrap it: [query]")
    if not lm.uses_chat_template(tokenizer, chat_template):
        return [lm.encode(tokenizer, prefix + fmt.query(q)) for q in queries]
    return [lm.encode_prompt(tokenizer, prefix + fmt.input_prefix + _clean(q, "query text", allow_empty=True),
                             fmt.output_prefix, chat_template) for q in queries]


def _split_ids(encoded: Sequence[Sequence[int]]) -> tuple[list[int], list[list[int]]]:
    """The token ids all prompts share at the start, and each prompt's remaining ids (at least one)."""
    shared = min(len(ids) for ids in encoded) - 1
    first = list(encoded[0])
    for ids in encoded[1:]:
        n = 0
        while n < shared and ids[n] == first[n]:
            n += 1
        shared = n
    return first[:shared], [list(ids[shared:]) for ids in encoded]


def _split_tokens(tokenizer, prompts: Sequence[str]) -> tuple[list[int], list[list[int]]]:
    """The token ids all prompts share at the start, and each prompt's remaining ids.

    Each prompt is tokenized whole, so the model sees exactly the tokenization of the full
    string (tokenizing the shared text on its own can differ at the boundary: SmolLM2's tokenizer
    writes a final "\\n\\n" as one token but "\\n\\nReview" as three). Every prompt keeps at
    least one token of its own.
    """
    from . import lm

    return _split_ids([lm.encode(tokenizer, p) for p in prompts])


@torch.no_grad()
def label_logprobs(model, tokenizer, prefix: str, queries: Sequence[str], label_words: Sequence[str],
                   fmt: PromptFormat = PromptFormat(), batch_size: int = 16, desc: str | None = None,
                   chat_template: str | bool = "off") -> torch.Tensor:
    """log p(label word | prefix + query) for every query and label: a float tensor (N, C).

    ``prefix`` is the shared part of the prompts (:func:`demonstration_prefix`); ``chat_template``
    is the policy of :func:`prompt_ids`. When every label word is one token, the tokens all
    prompts share are read once and their keys and values (the KV cache) reused by every query
    (:func:`wmlib.lm.next_token_logprobs`), so a query costs only its own tokens. When a label
    word is several tokens for this tokenizer, each word is scored as a continuation (the sum of
    its tokens' log-probabilities, :func:`wmlib.lm.score_candidates`). The log-probabilities are
    over the whole vocabulary, so they need not sum to 1 over the labels.
    """
    from . import lm

    if isinstance(queries, str):
        raise TypeError("queries must be a sequence of strings, not one string; wrap it: [query]")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    words = label_continuations(tokenizer, label_words)
    if len(queries) == 0:
        raise ValueError("no queries to score")
    prompts = prompt_ids(tokenizer, prefix, queries, fmt, chat_template)
    if all(len(w) == 1 for w in words):
        prefix_ids, rests = _split_ids(prompts)
        return lm.next_token_logprobs(model, rests, pad_token_id=lm.pad_id(tokenizer),
                                      token_ids=[w[0] for w in words], prefix=prefix_ids, max_batch=batch_size,
                                      desc=desc)
    return lm.score_candidates(model, prompts, [words] * len(prompts), pad_token_id=lm.pad_id(tokenizer),
                               max_batch=batch_size).logprob


def content_free_logprobs(model, tokenizer, prefix: str, label_words: Sequence[str],
                          fmt: PromptFormat = PromptFormat(),
                          inputs: Sequence[str] = CONTENT_FREE_INPUTS, chat_template: str | bool = "off") -> torch.Tensor:
    """The prompt's bias: log of the label probabilities it gives content-free inputs, each
    renormalised over the labels and then averaged over ``inputs`` (Zhao et al., 2021). Shape (C,)."""
    lp = label_logprobs(model, tokenizer, prefix, list(inputs), label_words, fmt, batch_size=len(inputs),
                        chat_template=chat_template)
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
    prefix_tokens: int  # tokens every prompt shares (read once, then cached)

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
                 calibrate: bool = True, batch_size: int = 16, desc: str | None = None,
                 chat_template: str | bool = "off") -> ICLRun:
    """Classify ``texts`` with the demonstrations ``demos`` in context; see :class:`ICLRun`.
    ``chat_template`` is the policy of :func:`prompt_ids` ("off": the plain prompt)."""
    if len(texts) != len(labels) or len(texts) == 0:
        raise ValueError(f"need as many labels as texts, and at least one; got {len(texts)} texts and "
                         f"{len(labels)} labels")
    prefix = demonstration_prefix(demos, label_words, fmt)
    lp = label_logprobs(model, tokenizer, prefix, texts, label_words, fmt, batch_size=batch_size, desc=desc,
                        chat_template=chat_template)
    cf = (content_free_logprobs(model, tokenizer, prefix, label_words, fmt, chat_template=chat_template)
          if calibrate else None)
    ids = prompt_ids(tokenizer, prefix, texts, fmt, chat_template)
    shared = len(_split_ids(ids)[0]) if len(ids) > 1 else 0
    return ICLRun(len(demos), lp, cf, torch.as_tensor(list(labels)), sum(map(len, ids)) / len(ids), shared)


# ------------------------------------------------------------------------------ the chapter's study
@dataclass(frozen=True)
class ICLStudyConfig:
    """The experiments of Chapter 12, all on the same ``n_eval`` SST-2 dev sentences (paired):

    - the number of demonstrations: ``ks`` with ``draws`` nested random draws (draw ``d``'s ``k``
      demonstrations are the first ``k`` of one random order of the pool);
    - the chat template: the same prompts under the other policy (template on if the main policy
      writes plain text, and vice versa), at ``k = 0`` and for the first ``template_draws`` draws
      of ``k_template``;
    - random labels (Min et al. 2022): the demonstrations of ``k_random``, each label replaced by one
      drawn uniformly at random;
    - order (Lu et al. 2022): ``orders`` permutations of draw 0's ``k_order`` demonstrations;
    - label words: ``terrible``/``great``, ``foo``/``bar`` and flipped words at ``k_words`` (and
      ``k = 0``) for the first ``word_draws`` draws.

    The defaults are the book's recorded run (``wmlib icl``): every sentence of the dev set, and
    33 conditions, about an hour of CPU time for SmolLM2-135M.

    ``chat_template`` is the main policy (:func:`wmlib.lm.uses_chat_template`).
    """

    n_eval: int = 872
    ks: tuple = (0, 4, 16)
    draws: int = 5
    k_random: int = 16
    k_order: int = 4
    orders: int = 6
    k_words: int = 16
    word_draws: int = 2
    k_template: int = 16
    template_draws: int = 3
    chat_template: str = "auto"
    seed: int = 0

    def __post_init__(self):
        for name in ("n_eval", "draws", "orders", "word_draws", "template_draws", "k_random", "k_order", "k_words",
                     "k_template"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name.startswith("k_") else 1):
                raise ValueError(f"ICLStudyConfig.{name} must be a positive int, got {v!r}")
        ks = tuple(self.ks)
        if not ks or ks[0] != 0 or any(not isinstance(k, int) or k < 1 for k in ks[1:]) or list(ks) != sorted(set(ks)):
            raise ValueError(f"ks must start with 0 and increase (e.g. (0, 4, 16)), got {self.ks!r}")
        object.__setattr__(self, "ks", ks)
        for name in ("k_random", "k_words", "k_order", "k_template"):
            if getattr(self, name) not in ks[1:]:
                raise ValueError(f"{name}={getattr(self, name)} must be one of the ks with demonstrations {ks[1:]}")
        if self.word_draws > self.draws or self.template_draws > self.draws:
            raise ValueError("word_draws and template_draws cannot exceed draws")
        import math

        if self.orders > math.factorial(self.k_order):
            raise ValueError(f"{self.k_order} demonstrations have only {math.factorial(self.k_order)} orders, "
                             f"not {self.orders}")
        if self.chat_template not in ("auto", "on", "off"):
            raise ValueError(f"chat_template must be 'auto', 'on' or 'off', got {self.chat_template!r}")


WORDS = ("negative", "positive")
WORD_SETS = {"terrible/great": ("terrible", "great"), "foo/bar": ("foo", "bar"), "flipped": ("positive", "negative")}


def study_data(config: ICLStudyConfig, min_words: int = 5, max_words: int = 25):
    """The study's evaluation sentences (``n_eval`` of SST-2 dev, in a random order seeded by
    ``config.seed``: a smaller ``n_eval`` gives a prefix of a larger one) and its demonstration pool
    (training examples of ``min_words`` to ``max_words`` words). Returns ``(eval_set, pool_texts,
    pool_labels)``."""
    from .data import load_sst2

    train, dev = load_sst2("train"), load_sst2("dev")
    eval_set = dev.subset(min(config.n_eval, len(dev)), torch.Generator().manual_seed(config.seed))
    pool = [(t, y) for t, y in zip(train.texts, train.labels) if min_words <= len(t.split()) <= max_words]
    return eval_set, [t for t, _ in pool], [int(y) for _, y in pool]


def study_conditions(config: ICLStudyConfig, has_template: bool) -> list[dict]:
    """Every prompt condition of the study: ``name``, ``k``, ``draw``, ``words``, ``labels``
    ("gold" or "random"), ``order`` (a permutation of the demonstrations, or None) and ``template``
    ("main" or "other"). The template comparison is left out when the tokenizer has no template."""
    c = config
    out = []

    def add(name, k, draw=0, words=WORDS, labels="gold", order=None, template="main"):
        out.append(dict(name=name, k=k, draw=draw, words=list(words), labels=labels, order=order, template=template))

    add("k0", 0)
    for k in c.ks[1:]:
        for d in range(c.draws):
            add(f"k{k}/d{d}", k, d)
    if has_template:
        add("other-template/k0", 0, template="other")
        for d in range(c.template_draws):
            add(f"other-template/k{c.k_template}/d{d}", c.k_template, d, template="other")
    for d in range(c.draws):
        add(f"random/k{c.k_random}/d{d}", c.k_random, d, labels="random")
    import itertools

    perms = list(itertools.permutations(range(c.k_order)))
    pick = 1 + torch.randperm(len(perms) - 1, generator=torch.Generator().manual_seed(c.seed + 300))[:c.orders - 1]
    for j in pick.tolist():
        add(f"order{j}/k{c.k_order}", c.k_order, 0, order=list(perms[j]))
    for name, words in WORD_SETS.items():
        if name != "flipped":
            add(f"{name}/k0", 0, words=words)
        for d in range(c.word_draws):
            add(f"{name}/k{c.k_words}/d{d}", c.k_words, d, words=words)
    return out


def study_demonstrations(config: ICLStudyConfig, condition: dict, pool_texts, pool_labels) -> list[tuple[str, int]]:
    """The demonstrations of one condition: draw ``d`` fixes a random order of the pool and the
    ``k`` demonstrations are its first ``k`` (so draws are nested in ``k``); then the condition's
    permutation and, for random labels, labels drawn uniformly at random (seeded by the draw)."""
    k, d = condition["k"], condition["draw"]
    order = torch.randperm(len(pool_texts), generator=torch.Generator().manual_seed(config.seed + 100 + d))
    demos = [(pool_texts[i], pool_labels[i]) for i in order[:k].tolist()]
    if condition["order"] is not None:
        demos = [demos[i] for i in condition["order"]]
    if condition["labels"] == "random":
        g = torch.Generator().manual_seed(config.seed + 500 + d)
        demos = [(t, int(y)) for (t, _), y in zip(demos, torch.randint(0, 2, (k,), generator=g).tolist())]
    return demos


def run_icl_study(model, tokenizer, config: ICLStudyConfig = ICLStudyConfig(), data=None, batch_size: int = 16,
                  names: Sequence[str] | None = None, log=None, previous: dict | None = None,
                  on_condition=None) -> dict:
    """Run the conditions of :func:`study_conditions` (or only those in ``names``) on
    :func:`study_data` (or ``data``) and return JSON-ready results: per condition the predicted label
    index of every query, raw and calibrated (strings of digits), the content-free probabilities,
    the labels written in the demonstrations, and prompt lengths; ``labels`` holds the true labels.

    ``previous`` (the results of an interrupted run of the same configuration) resumes it: its
    conditions are kept, not rerun. ``on_condition(results)`` is called after each condition with
    the results so far (``"complete": False``), for instance to save them."""
    import time
    from dataclasses import asdict

    from . import lm
    from .utils import progress

    eval_set, pool_texts, pool_labels = data if data is not None else study_data(config)
    main = lm.uses_chat_template(tokenizer, config.chat_template)
    has_template = bool(getattr(tokenizer, "chat_template", None))
    conditions = study_conditions(config, has_template)
    if names is not None:
        unknown = set(names) - {c["name"] for c in conditions}
        if unknown:
            raise ValueError(f"unknown conditions {sorted(unknown)}; the study has {[c['name'] for c in conditions]}")
        conditions = [c for c in conditions if c["name"] in set(names)]
    labels = "".join(str(int(y)) for y in eval_set.labels)
    results = {"config": asdict(config) | {"ks": list(config.ks)}, "chat_template_main": main, "labels": labels,
               "conditions": {}, "wall_seconds": 0.0, "cpu_seconds": 0.0, "complete": False}
    if previous is not None:
        for key in ("config", "chat_template_main", "labels"):
            if previous.get(key) != results[key]:
                raise ValueError(f"cannot resume: the previous run's {key!r} differs from this run's")
        results["conditions"] = {k: v for k, v in previous["conditions"].items()
                                 if k in {c["name"] for c in conditions}}
        results["wall_seconds"], results["cpu_seconds"] = previous["wall_seconds"], previous["cpu_seconds"]
    todo = [c for c in conditions if c["name"] not in results["conditions"]]
    for cond in progress(todo, desc="ICL conditions"):
        start, cpu = time.perf_counter(), time.process_time()
        demos = study_demonstrations(config, cond, pool_texts, pool_labels)
        use_template = main if cond["template"] == "main" else not main
        run = evaluate_icl(model, tokenizer, demos, eval_set.texts, eval_set.labels, cond["words"],
                           batch_size=batch_size, chat_template="on" if use_template else "off")
        results["conditions"][cond["name"]] = {
            **{key: cond[key] for key in ("k", "draw", "words", "labels", "order", "template")},
            "chat_template": use_template,
            "demo_labels": "".join(str(y) for _, y in demos),
            "pred": "".join(map(str, run.predictions.tolist())),
            "pred_calibrated": "".join(map(str, run.calibrated_predictions.tolist())),
            "content_free": [round(float(p), 6) for p in run.content_free.exp()],
            "prompt_tokens": round(run.prompt_tokens, 2), "prefix_tokens": run.prefix_tokens,
        }
        results["wall_seconds"] = round(results["wall_seconds"] + time.perf_counter() - start, 1)
        results["cpu_seconds"] = round(results["cpu_seconds"] + time.process_time() - cpu, 1)
        if log:
            log(f"  {cond['name']:>28}: accuracy {run.accuracy:.3f}, calibrated {run.calibrated_accuracy:.3f}")
        if on_condition:
            on_condition(results)
    # in the study's order, whatever order they were run in
    results["conditions"] = {c["name"]: results["conditions"][c["name"]] for c in conditions}
    results["complete"] = True
    return results


def study_correct(results: dict, name: str, calibrated: bool = False):
    """Whether each query of condition ``name`` in :func:`run_icl_study`'s ``results`` was classified
    correctly (with respect to the labels the condition's words teach): a bool numpy array."""
    import numpy as np

    if name not in results.get("conditions", {}):
        raise KeyError(f"no condition {name!r} in these results; they hold {list(results.get('conditions', {}))}")
    pred = results["conditions"][name]["pred_calibrated" if calibrated else "pred"]
    return np.frombuffer(pred.encode(), dtype=np.uint8) == np.frombuffer(results["labels"].encode(), dtype=np.uint8)
