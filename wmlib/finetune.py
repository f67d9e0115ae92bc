"""Fine-tuning a pretrained encoder for sentence classification (Chapter 10), and the tools that
Chapter 11 reuses to train and time smaller students.

The pieces, in the order a fine-tuning run uses them::

    tokens = tokenize(tokenizer, texts, max_len=64)        # ids + attention mask, padded per batch
    model = SentenceClassifier(encoder, num_labels=2)        # encoder + mean pooling + linear head
    history = train_classifier(model, tokenizer, train_set)  # AdamW, linear warm-up and decay
    result = evaluate(model, tokenizer, dev_set)             # accuracy, predictions, logits
    ms = latency_ms(model, tokenizer, texts, batch_size=1)   # median wall-clock time per call

Fine-tuned weights can be kept in the wmlib cache (``<cache root>/finetuned/``, never in the
repository: about 90 MB for MiniLM) by :func:`fine_tune_sst2`, which Chapter 11 calls to get its
teacher back without training it again. ``wmlib finetune-sst2`` runs the same from a shell.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .data import LabelledTexts, cache_root
from .utils import progress

__all__ = [
    "mean_pool", "SentenceClassifier", "keep_layers", "prune_feed_forward", "freeze_word_embeddings", "tokenize", "length_bucketed_batches", "linear_warmup_decay",
    "TrainHistory", "train_classifier", "predict_logits", "EvalResult", "evaluate", "latency_ms",
    "count_parameters", "save_classifier", "load_classifier", "SST2Recipe", "fine_tune_sst2",
]


# ------------------------------------------------------------------------------------ the model
def _check_batch(input_ids, attention_mask) -> None:
    """Clear errors for the mistakes people make when calling a classifier (see Chapter 10)."""
    if not isinstance(input_ids, torch.Tensor):
        raise TypeError(f"input_ids must be a tensor of token ids, got {type(input_ids).__name__}")
    if input_ids.dim() != 2 or input_ids.is_floating_point():
        raise ValueError(
            f"input_ids must be integer token ids of shape (batch, length); got dtype {input_ids.dtype} and shape "
            f"{tuple(input_ids.shape)}. A classifier runs its own encoder: pass token ids, not hidden states or "
            "a pooled vector."
        )
    if attention_mask is None:
        return
    if not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != input_ids.shape:
        got = tuple(attention_mask.shape) if isinstance(attention_mask, torch.Tensor) else type(attention_mask).__name__
        raise ValueError(f"attention_mask must have the shape of input_ids {tuple(input_ids.shape)}, got {got}")
    if attention_mask.is_floating_point() and not torch.all((attention_mask == 0) | (attention_mask == 1)):
        raise ValueError("attention_mask must hold 1 (a real token) or 0 (padding) only")
    empty = (attention_mask.sum(-1) == 0).nonzero().flatten()
    if len(empty):
        raise ValueError(f"rows {empty.tolist()[:5]} of attention_mask are all zero: every sentence needs at least "
                         "one real token (the tokenizer adds [CLS] and [SEP])")


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the hidden states of the real tokens: hidden (B, L, D), mask (B, L) -> (B, D).

    Padding positions must not count: a plain ``hidden.mean(1)`` would make a sentence's vector
    depend on how long the *other* sentences of its batch are.
    """
    if hidden.dim() != 3 or attention_mask.shape != hidden.shape[:2]:
        raise ValueError(f"mean_pool needs hidden (B, L, D) and mask (B, L); got {tuple(hidden.shape)} and "
                         f"{tuple(attention_mask.shape)}")
    m = attention_mask.to(hidden.dtype).unsqueeze(-1)  # (B, L, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


class SentenceClassifier(nn.Module):
    """A pretrained encoder, a pooling step and a linear head: token ids (B, L) -> logits (B, C).

    ``encoder`` is any module called as ``encoder(input_ids=..., attention_mask=...)`` that returns
    an object with ``last_hidden_state`` (B, L, D) (a Hugging Face ``BertModel`` does).
    ``pooling``: ``"mean"`` (average of the real tokens, how all-MiniLM-L6-v2 was trained) or
    ``"cls"`` (the first token's state).
    """

    def __init__(self, encoder: nn.Module, num_labels: int, pooling: str = "mean", dropout: float = 0.1):
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        if num_labels < 2:
            raise ValueError(f"num_labels must be at least 2, got {num_labels}")
        hidden = getattr(getattr(encoder, "config", None), "hidden_size", None)
        if hidden is None:
            raise ValueError("the encoder has no config.hidden_size; pass a Hugging Face encoder such as BertModel")
        self.encoder, self.pooling, self.num_labels = encoder, pooling, num_labels
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_labels)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        _check_batch(input_ids, attention_mask)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        pooled = mean_pool(hidden, attention_mask) if self.pooling == "mean" else hidden[:, 0]
        return self.head(self.dropout(pooled))


def keep_layers(model: SentenceClassifier, layers: Sequence[int]) -> SentenceClassifier:
    """A copy of ``model`` whose encoder keeps only the Transformer layers ``layers`` (in that
    order), with the embeddings and the head unchanged: a shallower student initialised from its
    teacher, as DistilBERT was (Chapter 11). ``model`` itself is not modified."""
    import copy

    stack = getattr(getattr(getattr(model, "encoder", None), "encoder", None), "layer", None)
    if not isinstance(stack, nn.ModuleList):
        raise TypeError("keep_layers needs a SentenceClassifier around a BERT-style encoder (encoder.encoder.layer)")
    layers = list(layers)
    if not layers or any(not isinstance(i, int) or not 0 <= i < len(stack) for i in layers):
        raise ValueError(f"layers must be a non-empty list of indices in 0..{len(stack) - 1}, got {layers}")
    student = copy.deepcopy(model)
    student.encoder.encoder.layer = nn.ModuleList([student.encoder.encoder.layer[i] for i in layers])
    student.encoder.config.num_hidden_layers = len(layers)
    return student


@torch.no_grad()
def prune_feed_forward(model: SentenceClassifier, keep: int, tokenizer=None, texts: Sequence[str] | None = None,
                       max_len: int = 64) -> SentenceClassifier:
    """A copy of ``model`` in which every layer's feed-forward block keeps only its ``keep`` most
    important hidden units (of ``intermediate_size``, 1536 in MiniLM); attention is untouched.

    A unit's importance is the size of what it writes back: ``mean |activation| × ||output
    weights||``, with the mean activation measured on ``texts`` (tokenized with ``tokenizer``)
    when given, else the norm of its input weights as a data-free stand-in.
    """
    import copy

    layers = getattr(getattr(getattr(model, "encoder", None), "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList):
        raise TypeError("prune_feed_forward needs a SentenceClassifier around a BERT-style encoder")
    width = layers[0].intermediate.dense.out_features
    if not 0 < keep <= width:
        raise ValueError(f"keep must be between 1 and the feed-forward width {width}, got {keep}")
    if (texts is None) != (tokenizer is None):
        raise ValueError("pass both tokenizer and texts (activation-based importance) or neither (weight norms)")
    student = copy.deepcopy(model).eval()
    stack = student.encoder.encoder.layer
    scores = [torch.zeros(width) for _ in stack]
    if texts is not None:
        hooks = []
        for i, layer in enumerate(stack):
            def record(module, inputs, output, i=i):
                # output: (B, L, width) after the activation; padding positions are included, a
                # small bias that is the same for every unit
                scores[i] += output.abs().sum(dim=(0, 1)).cpu()
            hooks.append(layer.intermediate.register_forward_hook(record))
        predict_logits(student, tokenizer, list(texts), max_len=max_len)
        for h in hooks:
            h.remove()
    for i, layer in enumerate(stack):
        w_in, w_out = layer.intermediate.dense, layer.output.dense
        usage = scores[i] if texts is not None else w_in.weight.norm(dim=1).cpu()
        importance = usage * w_out.weight.norm(dim=0).cpu()
        idx = importance.topk(keep).indices.sort().values.to(w_in.weight.device)
        new_in = nn.Linear(w_in.in_features, keep).to(w_in.weight.device)
        new_in.weight.copy_(w_in.weight[idx])
        new_in.bias.copy_(w_in.bias[idx])
        new_out = nn.Linear(keep, w_out.out_features).to(w_out.weight.device)
        new_out.weight.copy_(w_out.weight[:, idx])
        new_out.bias.copy_(w_out.bias)
        layer.intermediate.dense, layer.output.dense = new_in, new_out
    student.encoder.config.intermediate_size = keep
    return student


def freeze_word_embeddings(model: SentenceClassifier) -> SentenceClassifier:
    """Stop training the word-piece embedding table (in place; returns ``model``).

    In MiniLM the table holds half of all parameters (30,522 x 384), but a batch touches only a few
    hundred of its rows. Training it anyway costs a dense gradient and an AdamW update of all 11.7 M
    entries at every step, which dominates the step time of a small model on a CPU.
    """
    emb = getattr(getattr(getattr(model, "encoder", None), "embeddings", None), "word_embeddings", None)
    if not isinstance(emb, nn.Embedding):
        raise TypeError("freeze_word_embeddings needs a SentenceClassifier around a BERT-style encoder")
    emb.weight.requires_grad_(False)
    return model


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (each shared tensor counted once)."""
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


# ------------------------------------------------------------------------------------ the data
def tokenize(tokenizer, texts: Sequence[str], max_len: int = 64) -> dict[str, torch.Tensor]:
    """Token ids and attention mask for ``texts``, padded to the longest (at most ``max_len``
    tokens, [CLS] and [SEP] included; longer texts are truncated)."""
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings; wrap a single sentence in a list")
    if len(texts) == 0:
        raise ValueError("texts is empty")
    enc = tokenizer(list(texts), padding=True, truncation=True, max_length=max_len, return_tensors="pt")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def length_bucketed_batches(lengths: Sequence[int], batch_size: int, generator: torch.Generator | None = None,
                            pool: int = 50) -> list[list[int]]:
    """Shuffle indices, sort them by length within pools of ``pool`` batches, and cut batches.

    Sentences of similar length end up in the same batch, so little compute goes to padding, and
    the batch order is shuffled again so training still sees lengths in a random order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    order = torch.randperm(len(lengths), generator=generator).tolist()
    out = []
    for start in range(0, len(order), pool * batch_size):
        chunk = sorted(order[start:start + pool * batch_size], key=lambda i: lengths[i])
        out += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    perm = torch.randperm(len(out), generator=generator).tolist()
    return [out[i] for i in perm]


def linear_warmup_decay(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int):
    """Learning rate rising linearly from 0 over ``warmup_steps``, then falling linearly to 0 at
    ``total_steps`` (the schedule of BERT's fine-tuning recipe; the same numbers as transformers'
    ``get_linear_schedule_with_warmup``). Returns a scheduler to ``step()`` after every batch."""
    if not 0 <= warmup_steps <= total_steps or total_steps < 1:
        raise ValueError(f"need 0 <= warmup_steps <= total_steps and total_steps >= 1; got {warmup_steps}, {total_steps}")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / warmup_steps
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# ------------------------------------------------------------------------------------ training
@dataclass
class TrainHistory:
    """What a training run did: the loss and learning rate at every step, its wall time, and the
    CPU time of the process meanwhile (on a shared machine the wall time is inflated by other
    jobs; the CPU time is what the run would take alone with the same threads)."""

    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    examples: int = 0
    epochs: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0

    @property
    def steps(self) -> int:
        return len(self.losses)


LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def train_classifier(model: nn.Module, tokenizer, data: LabelledTexts, *, epochs: int = 1, batch_size: int = 32,
                     lr: float = 5e-5, weight_decay: float = 0.01, warmup: float = 0.1, max_len: int = 64,
                     seed: int = 0, loss_fn: LossFn | None = None, device: torch.device | str | None = None,
                     max_grad_norm: float = 1.0, desc: str = "fine-tuning") -> TrainHistory:
    """Fine-tune ``model`` (token ids, mask -> logits) on ``data`` with AdamW and a linear warm-up
    (the first ``warmup`` fraction of the steps) then linear decay.

    ``loss_fn(logits, labels, index)`` replaces the cross-entropy; ``index`` holds the positions of
    the batch's examples in ``data``, so a loss can look up per-example targets (Chapter 11 uses it
    for a teacher's logits). The model is left in eval mode.
    """
    if len(data) == 0:
        raise ValueError("the training set is empty")
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # dropout masks
    lengths = [len(ids) for ids in tokenizer(list(data.texts), truncation=True, max_length=max_len)["input_ids"]]
    labels = torch.tensor(data.labels)
    plan = [length_bucketed_batches(lengths, batch_size, g) for _ in range(epochs)]
    total = sum(len(p) for p in plan)
    no_decay = ("bias", "LayerNorm.weight", "norm.weight", "layer_norm.weight")  # BERT's recipe: no decay there
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in params if not n.endswith(no_decay)], "weight_decay": weight_decay},
              {"params": [p for n, p in params if n.endswith(no_decay)], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=lr)
    sched = linear_warmup_decay(opt, int(warmup * total), total)
    history = TrainHistory(epochs=epochs)
    model.train()
    start, cpu_start = time.perf_counter(), time.process_time()
    for batch in progress((b for p in plan for b in p), desc=desc, total=total):
        index = torch.tensor(batch)
        enc = tokenize(tokenizer, [data.texts[i] for i in batch], max_len)
        logits = model(enc["input_ids"].to(device), enc["attention_mask"].to(device))
        y = labels[index].to(device)
        loss = F.cross_entropy(logits, y) if loss_fn is None else loss_fn(logits, y, index)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the loss became {loss.item()} at step {history.steps}; lower the learning rate "
                                     f"(lr={lr}) or check the loss function")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if max_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        opt.step()
        sched.step()
        history.losses.append(loss.item())
        history.lrs.append(sched.get_last_lr()[0])
        history.examples += len(batch)
    history.seconds = time.perf_counter() - start
    history.cpu_seconds = time.process_time() - cpu_start
    model.eval()
    return history


# ------------------------------------------------------------------------------------ evaluation
@torch.no_grad()
def predict_logits(model: nn.Module, tokenizer, texts: Sequence[str], batch_size: int = 64, max_len: int = 64,
                   device: torch.device | str | None = None) -> torch.Tensor:
    """Logits (N, C) for ``texts``, on the CPU, in the order of ``texts``. Texts are batched by
    length so that little time goes to padding."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    lengths = [len(t) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    out = [None] * len(texts)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        enc = tokenize(tokenizer, [texts[i] for i in idx], max_len)
        logits = model(enc["input_ids"].to(device), enc["attention_mask"].to(device)).float().cpu()
        for i, row in zip(idx, logits):
            out[i] = row
    model.train(was_training)
    return torch.stack(out)


@dataclass
class EvalResult:
    accuracy: float
    predictions: torch.Tensor  # (N,) predicted class ids
    logits: torch.Tensor  # (N, C)
    labels: torch.Tensor  # (N,) the true class ids


def evaluate(model: nn.Module, tokenizer, data: LabelledTexts, batch_size: int = 64, max_len: int = 64,
             device=None) -> EvalResult:
    """Accuracy of ``model`` on ``data``, with its predictions and logits."""
    logits = predict_logits(model, tokenizer, data.texts, batch_size, max_len, device)
    if logits.shape[-1] != len(data.label_names):
        raise ValueError(f"the model predicts {logits.shape[-1]} classes but {data.name or 'the data'} has "
                         f"{len(data.label_names)} ({data.label_names})")
    labels = torch.tensor(data.labels)
    pred = logits.argmax(-1)
    return EvalResult((pred == labels).float().mean().item(), pred, logits, labels)


@torch.no_grad()
def latency_ms(model: nn.Module, tokenizer, texts: Sequence[str], batch_size: int = 1, max_len: int = 64,
               repeats: int = 30, warmup: int = 5, device=None) -> float:
    """Median wall-clock milliseconds to classify ``batch_size`` sentences, from strings to logits
    (tokenization included), after ``warmup`` untimed calls.

    Call ``i`` classifies ``texts[i*batch_size : (i+1)*batch_size]`` (cycling through ``texts``),
    so every model is timed on the same sentences. The median, not the mean, because on a shared
    machine a few calls are slowed down by other processes.
    """
    if len(texts) < batch_size:
        raise ValueError(f"need at least batch_size={batch_size} texts, got {len(texts)}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    model.eval()
    n_batches = len(texts) // batch_size
    times = []
    for call in range(warmup + repeats):
        b = call % n_batches
        chunk = texts[b * batch_size:(b + 1) * batch_size]
        sync()
        start = time.perf_counter()
        enc = tokenize(tokenizer, chunk, max_len)
        model(enc["input_ids"].to(device), enc["attention_mask"].to(device))
        sync()
        if call >= warmup:
            times.append(time.perf_counter() - start)
    times.sort()
    mid = len(times) // 2
    median = times[mid] if len(times) % 2 else (times[mid - 1] + times[mid]) / 2
    return 1e3 * median


# ------------------------------------------------------------------------------------ the cache
def save_classifier(model: SentenceClassifier, path: str | Path, meta: dict) -> Path:
    """Save a classifier's weights and a JSON description (``meta`` must say how to rebuild it:
    at least ``model``, the packaged encoder name, and ``num_labels``)."""
    from safetensors.torch import save_file

    for key in ("model", "num_labels"):
        if key not in meta:
            raise ValueError(f"meta needs {key!r} to rebuild the classifier")
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp / "model.safetensors"))
    (tmp / "meta.json").write_text(json.dumps({"pooling": model.pooling, **meta}, indent=2))
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)  # atomic: a half-written folder is never mistaken for a finished one
    return path


def load_classifier(path: str | Path, device=None, reshape=None) -> tuple[SentenceClassifier, object, dict]:
    """Rebuild a classifier saved by :func:`save_classifier`: ``(model, tokenizer, meta)``.

    ``reshape(model, meta)``, if given, returns the saved model's architecture (a smaller student,
    say) before the weights are loaded into it.
    """
    from safetensors.torch import load_file

    from .models import load_encoder

    path = Path(path)
    if not (path / "meta.json").exists():
        raise FileNotFoundError(f"no saved classifier in {path} (expected meta.json and model.safetensors)")
    meta = json.loads((path / "meta.json").read_text())
    encoder, tokenizer = load_encoder(meta["model"])
    model = SentenceClassifier(encoder, meta["num_labels"], pooling=meta.get("pooling", "mean"))
    if reshape is not None:
        model = reshape(model, meta)
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    model.eval()
    if device is not None:
        model.to(device)
    return model, tokenizer, meta


SST2_TRAIN_SIZE = 67_349  # sentences and phrases in SST-2's training split


@dataclass(frozen=True)
class SST2Recipe:
    """Everything that determines a fine-tuned SST-2 classifier (and so its cache key)."""

    model: str = "minilm-l6"
    train_size: int = SST2_TRAIN_SIZE  # examples drawn at random from SST-2 train (default: all, shuffled)
    epochs: int = 1
    batch_size: int = 32
    lr: float = 1e-4
    warmup: float = 0.1
    max_len: int = 64
    seed: int = 0
    freeze_word_embeddings: bool = False  # keep the 11.7 M-entry word-piece table fixed (faster steps)

    def key(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return f"sst2-{self.model}-n{self.train_size}-e{self.epochs}-{hashlib.sha256(blob).hexdigest()[:10]}"


def fine_tune_sst2(recipe: SST2Recipe = SST2Recipe(), *, cache: str = "use", device=None,
                   train_set: LabelledTexts | None = None) -> tuple[SentenceClassifier, object, dict]:
    """A MiniLM (or other packaged encoder) fine-tuned on SST-2 by ``recipe``: ``(model, tokenizer,
    info)``, with ``info["history"]``, the :class:`TrainHistory` of the run that produced the weights.

    ``cache``: ``"use"`` loads a model trained earlier with the same recipe from
    ``<cache root>/finetuned/`` when there is one, else trains and saves; ``"refresh"`` always trains
    and saves; ``"off"`` trains and saves nothing. ``info["cached"]`` says whether it was loaded.
    ``train_set`` (optional) must be the recipe's subset, if the caller has already drawn it.
    """
    from .data import load_sst2
    from .models import load_encoder

    if cache not in ("use", "refresh", "off"):
        raise ValueError(f"cache must be 'use', 'refresh' or 'off', got {cache!r}")
    target = cache_root() / "finetuned" / recipe.key()
    if cache == "use" and (target / "meta.json").exists():
        model, tokenizer, meta = load_classifier(target, device)
        history = TrainHistory(meta["losses"], meta["lrs"], meta["examples"], recipe.epochs, meta["train_seconds"],
                               meta.get("train_cpu_seconds", 0.0))
        return model, tokenizer, {**meta, "history": history, "cached": True, "path": str(target)}
    if train_set is None:
        full = load_sst2("train")
        train_set = full.subset(recipe.train_size, torch.Generator().manual_seed(recipe.seed))
    elif len(train_set) != recipe.train_size:
        raise ValueError(f"train_set has {len(train_set)} examples but recipe.train_size is {recipe.train_size}")
    torch.manual_seed(recipe.seed)  # the head's initial weights
    encoder, tokenizer = load_encoder(recipe.model)
    model = SentenceClassifier(encoder, num_labels=2)
    if recipe.freeze_word_embeddings:
        freeze_word_embeddings(model)
    if device is not None:
        model.to(device)
    history = train_classifier(model, tokenizer, train_set, epochs=recipe.epochs, batch_size=recipe.batch_size,
                               lr=recipe.lr, warmup=recipe.warmup, max_len=recipe.max_len, seed=recipe.seed,
                               desc=f"fine-tuning {recipe.model} on {len(train_set)} SST-2 examples")
    meta = {"model": recipe.model, "num_labels": 2, "label_names": list(train_set.label_names),
            "recipe": asdict(recipe), "train_seconds": history.seconds,
            "train_cpu_seconds": history.cpu_seconds, "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "losses": history.losses,
            "lrs": history.lrs, "examples": history.examples, "device": str(next(model.parameters()).device),
            "torch_threads": torch.get_num_threads()}
    if cache != "off":
        try:
            save_classifier(model, target, meta)
        except OSError:
            pass  # a read-only cache only costs a retraining next time
    return model, tokenizer, {**meta, "history": history, "cached": False, "path": str(target)}
