"""A smaller, faster student distilled from a fine-tuned classifier (Chapter 11).

The pieces, in the order a distillation run uses them::

    student = make_student(teacher, layers=(0, 5), ffn=512)       # a shallower, thinner copy
    z_t = predict_logits(teacher, tokenizer, transfer.texts)       # the teacher's logits, once
    history = distill(student, tokenizer, transfer, z_t, T=4.0, alpha=0.5)
    timings = compare_latency({"teacher": teacher, "student": student}, tokenizer, texts)

The loss is :func:`wmlib.distillation.distillation_loss` (Chapter 4): α · CE(labels) + (1 − α) ·
T² · KL(teacher_T ‖ student_T). :func:`distill_sst2` runs all of it for SST-2 and keeps the student
in the wmlib cache (``<cache root>/finetuned/``); ``wmlib distill-sst2`` runs Chapter 11's study
(a label-only baseline and a temperature sweep) from a shell.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from .data import LabelledTexts, cache_root
from .distillation import distillation_loss
from .finetune import (SentenceClassifier, SST2Recipe, TrainHistory, fine_tune_sst2, freeze_word_embeddings,
                       keep_layers, load_classifier, predict_logits, prune_feed_forward, save_classifier, tokenize,
                       train_classifier)

__all__ = ["make_student", "distill", "compare_latency", "StudentRecipe", "load_student", "distill_sst2"]


def make_student(teacher: SentenceClassifier, layers: Sequence[int], ffn: int | None = None, tokenizer=None,
                 texts: Sequence[str] | None = None) -> SentenceClassifier:
    """A student initialised from ``teacher``: only the Transformer ``layers`` kept (embeddings and
    head unchanged), and, when ``ffn`` is given, every feed-forward block cut to its ``ffn`` most
    important hidden units (measured on ``texts`` if given; see
    :func:`wmlib.finetune.prune_feed_forward`). The teacher is not modified."""
    student = keep_layers(teacher, layers)
    if ffn is not None:
        student = prune_feed_forward(student, ffn, tokenizer, texts)
    return student


def distill(student: nn.Module, tokenizer, data: LabelledTexts, teacher_logits: torch.Tensor, *, T: float = 4.0,
            alpha: float = 0.5, **train_kwargs) -> TrainHistory:
    """Train ``student`` on ``data`` with the distillation loss against ``teacher_logits`` (N, C),
    row ``i`` being the teacher's logits for ``data.texts[i]``. ``alpha=1`` ignores the teacher
    (plain training on the labels); ``alpha=0`` ignores the labels. Other keyword arguments go to
    :func:`wmlib.finetune.train_classifier` (epochs, batch_size, lr, ...)."""
    if not isinstance(teacher_logits, torch.Tensor) or teacher_logits.dim() != 2:
        raise ValueError("teacher_logits must be a tensor of shape (N, num_classes), one row per training example")
    if teacher_logits.shape[0] != len(data):
        raise ValueError(f"teacher_logits has {teacher_logits.shape[0]} rows but the training set has {len(data)} "
                         "examples: compute the teacher's logits on the same texts, in the same order")
    if teacher_logits.shape[1] != len(data.label_names):
        raise ValueError(f"teacher_logits has {teacher_logits.shape[1]} classes but the data has "
                         f"{len(data.label_names)}")
    z_t = teacher_logits.detach().float().cpu()

    def loss_fn(logits, labels, index):
        return distillation_loss(logits, z_t[index].to(logits.device), labels, T=T, alpha=alpha)

    train_kwargs.setdefault("desc", f"distilling (T={T:g}, alpha={alpha:g})")
    return train_classifier(student, tokenizer, data, loss_fn=loss_fn, **train_kwargs)


@torch.no_grad()
def compare_latency(models: dict[str, nn.Module], tokenizer, texts: Sequence[str], batch_size: int = 1,
                    repeats: int = 20, warmup: int = 3, rounds: int = 3, max_len: int = 64,
                    threads: int | None = 1) -> dict[str, dict]:
    """Time several models fairly: the same batches of ``texts`` (strings to logits, tokenization
    included), ``warmup`` untimed calls, then ``repeats`` timed calls per model per round; the
    models take turns in every round, so a burst of load from other processes hits them all alike.

    Returns ``{name: {"wall_ms": median wall-clock ms per call, "cpu_ms": median CPU ms per call}}``.
    The CPU time (of this process) is what a call costs with the machine to itself at the same
    number of threads; on a shared machine the wall time also counts waiting for a core.
    ``threads`` sets torch's CPU threads while timing (restored after; None keeps the current
    setting). One thread is the default: with more, the CPU time of a short call also counts worker
    threads waiting for work (on 2 cores, a one-sentence call of Chapter 11's student used 2.4x
    its wall time in CPU, the teacher 2.1x), which skews a CPU-time comparison.
    """
    if not models:
        raise ValueError("models is empty: pass {'name': model, ...}")
    if len(texts) < batch_size:
        raise ValueError(f"need at least batch_size={batch_size} texts, got {len(texts)}")
    n_batches = len(texts) // batch_size
    batches = [list(texts[b * batch_size:(b + 1) * batch_size]) for b in range(min(n_batches, warmup + repeats))]
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1 (or None to keep torch's setting), got {threads}")
    for model in models.values():
        model.eval()
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _timed_rounds(models, tokenizer, batches, warmup, repeats, rounds, max_len)
    finally:
        torch.set_num_threads(before)


def _timed_rounds(models, tokenizer, batches, warmup, repeats, rounds, max_len) -> dict[str, dict]:
    wall: dict[str, list[float]] = {name: [] for name in models}
    cpu: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            device = next(model.parameters()).device
            sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
            for call in range(warmup + repeats):
                chunk = batches[call % len(batches)]
                sync()
                w0, c0 = time.perf_counter(), time.process_time()
                enc = tokenize(tokenizer, chunk, max_len)
                model(enc["input_ids"].to(device), enc["attention_mask"].to(device))
                sync()
                if call >= warmup:
                    wall[name].append(time.perf_counter() - w0)
                    cpu[name].append(time.process_time() - c0)
    return {name: {"wall_ms": 1e3 * statistics.median(wall[name]), "cpu_ms": 1e3 * statistics.median(cpu[name])}
            for name in models}


# ------------------------------------------------------------------------------------ SST-2 and the cache
@dataclass(frozen=True)
class StudentRecipe:
    """Everything that determines a distilled SST-2 student (and so its cache key)."""

    teacher: SST2Recipe = SST2Recipe()  # Chapter 10's full run: all of SST-2 train, one epoch
    layers: tuple[int, ...] = (0, 5)  # the teacher's layers the student keeps
    ffn: int | None = 512  # feed-forward units kept per layer (MiniLM has 1536); None keeps all
    T: float = 4.0
    alpha: float = 0.5  # weight of the label loss; 1.0 = no teacher (the baseline)
    train_size: int = 8000  # transfer set: examples of SST-2 train, drawn with ``seed``
    epochs: int = 1
    batch_size: int = 32
    lr: float = 2e-4
    max_len: int = 64
    seed: int = 0
    freeze_word_embeddings: bool = True  # the table is half the parameters but cheap to run; keep it

    def key(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return (f"student-{len(self.layers)}l-ffn{self.ffn}-T{self.T:g}-a{self.alpha:g}-n{self.train_size}-"
                f"{hashlib.sha256(blob).hexdigest()[:10]}")

    def path(self) -> Path:
        return cache_root() / "finetuned" / self.key()

    def cached(self) -> bool:
        return (self.path() / "meta.json").exists()


def load_student(path: str | Path, device=None) -> tuple[SentenceClassifier, object, dict]:
    """Rebuild a student saved by :func:`distill_sst2`: ``(model, tokenizer, meta)``."""
    path = Path(path)
    if not (path / "meta.json").exists():
        raise FileNotFoundError(f"no saved student in {path}; run 'wmlib distill-sst2' to make one")
    return load_classifier(path, device, reshape=lambda base, meta: make_student(base, meta["layers"], meta["ffn"]))


def distill_sst2(recipe: StudentRecipe = StudentRecipe(), *, cache: str = "use", device=None,
                 teacher: tuple[SentenceClassifier, object] | None = None, transfer: LabelledTexts | None = None,
                 teacher_logits: torch.Tensor | None = None) -> tuple[SentenceClassifier, object, dict]:
    """A student of an SST-2 teacher, made by ``recipe``: ``(model, tokenizer, info)``.

    ``cache`` as in :func:`wmlib.finetune.fine_tune_sst2` ("use", "refresh", "off"). A caller
    that distils several students may pass what they share: ``teacher`` = (model, tokenizer) of
    ``recipe.teacher``, the ``transfer`` set and the teacher's logits on it.
    """
    from .data import load_sst2

    if cache not in ("use", "refresh", "off"):
        raise ValueError(f"cache must be 'use', 'refresh' or 'off', got {cache!r}")
    if cache == "use" and recipe.cached():
        model, tokenizer, meta = load_student(recipe.path(), device)
        history = TrainHistory(meta["losses"], meta["lrs"], meta["examples"], recipe.epochs, meta["train_seconds"],
                               meta.get("train_cpu_seconds", 0.0))
        return model, tokenizer, {**meta, "history": history, "cached": True, "path": str(recipe.path())}
    if teacher is None:
        teacher = fine_tune_sst2(recipe.teacher, cache="use", device=device)[:2]
    t_model, tokenizer = teacher
    if transfer is None:
        transfer = load_sst2("train").subset(recipe.train_size, torch.Generator().manual_seed(recipe.seed))
    elif len(transfer) != recipe.train_size:
        raise ValueError(f"transfer has {len(transfer)} examples but recipe.train_size is {recipe.train_size}")
    if teacher_logits is None:
        teacher_logits = predict_logits(t_model, tokenizer, transfer.texts, max_len=recipe.max_len)
    student = make_student(t_model, recipe.layers, recipe.ffn, tokenizer, transfer.texts[:1000])
    if recipe.freeze_word_embeddings:
        freeze_word_embeddings(student)
    history = distill(student, tokenizer, transfer, teacher_logits, T=recipe.T, alpha=recipe.alpha,
                      epochs=recipe.epochs, batch_size=recipe.batch_size, lr=recipe.lr, max_len=recipe.max_len,
                      seed=recipe.seed, device=device,
                      desc=f"distilling a {len(recipe.layers)}-layer student (T={recipe.T:g}, alpha={recipe.alpha:g})")
    meta = {"model": recipe.teacher.model, "num_labels": 2, "layers": list(recipe.layers), "ffn": recipe.ffn,
            "recipe": asdict(recipe), "train_seconds": history.seconds, "train_cpu_seconds": history.cpu_seconds,
            "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "losses": history.losses,
            "lrs": history.lrs, "examples": history.examples, "torch_threads": torch.get_num_threads()}
    if cache != "off":
        try:
            save_classifier(student, recipe.path(), meta)
        except OSError:
            pass  # a read-only cache only costs a retraining next time
    return student, tokenizer, {**meta, "history": history, "cached": False, "path": str(recipe.path())}


def study_recipes(base: StudentRecipe, temperatures: Sequence[float]) -> dict[str, StudentRecipe]:
    """The label-only baseline and one distilled student per temperature, all else equal."""
    from dataclasses import replace

    out = {"labels only": replace(base, alpha=1.0, T=1.0)}
    out.update({f"T={T:g}": replace(base, T=float(T)) for T in temperatures})
    return out
