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
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from .data import LabelledTexts, cache_root
from .distillation import distillation_loss
from .finetune import (SST2_TRAIN_SIZE, SentenceClassifier, SST2Recipe, TrainHistory, fine_tune_sst2, freeze_word_embeddings,
                       keep_layers, load_classifier, predict_logits, prune_feed_forward, save_classifier, tokenize,
                       train_classifier)
from .utils import synchronize

__all__ = ["make_student", "distill", "compare_latency", "speedup", "StudentRecipe", "INITS", "transfer_indices",
           "teacher_train_logits", "transfer_logits", "load_student", "distill_sst2", "study_recipes", "DistillStudy",
           "study_conditions", "run_study", "study_correct", "study_seeds", "SeedComparison", "compare_seeds"]


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

    Returns ``{name: {"wall_ms": median wall-clock ms per call, "cpu_ms": median CPU ms per call,
    "wall_calls_ms": [...], "cpu_calls_ms": [...]}}``, the lists holding every timed call in order:
    call ``i`` of every model ran the same batch in the same round, so calls pair up across models
    (see :func:`speedup`).
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
    from .utils import torch_threads

    with torch_threads(threads):
        return _timed_rounds(models, tokenizer, batches, warmup, repeats, rounds, max_len)


def _timed_rounds(models, tokenizer, batches, warmup, repeats, rounds, max_len) -> dict[str, dict]:
    wall: dict[str, list[float]] = {name: [] for name in models}
    cpu: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            device = next(model.parameters()).device
            sync = lambda: synchronize(device)  # noqa: E731
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
    return {name: {"wall_ms": 1e3 * statistics.median(wall[name]), "cpu_ms": 1e3 * statistics.median(cpu[name]),
                   "wall_calls_ms": [1e3 * t for t in wall[name]], "cpu_calls_ms": [1e3 * t for t in cpu[name]]}
            for name in models}


def speedup(timings: dict[str, dict], slow: str, fast: str, kind: str = "cpu") -> "stats.Estimate":
    """How many times faster ``fast`` ran than ``slow`` in :func:`compare_latency`'s ``timings``:
    the median over paired calls (same batch, same round) of the ratio slow/fast, with a bootstrap
    interval over the calls. ``kind``: ``"cpu"`` or ``"wall"``. The interval says how precisely
    this run measured the ratio, not how it varies between machines."""
    import numpy as np

    from . import stats

    if kind not in ("cpu", "wall"):
        raise ValueError(f"kind must be 'cpu' or 'wall', got {kind!r}")
    for name in (slow, fast):
        if name not in timings:
            raise KeyError(f"no timings for {name!r}; timed: {sorted(timings)}")
    a, b = (np.asarray(timings[n][f"{kind}_calls_ms"], dtype=float) for n in (slow, fast))
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"{slow!r} and {fast!r} must have the same, non-zero number of timed calls "
                         f"(got {a.size} and {b.size}): time them in one compare_latency call")
    if (a <= 0).any() or (b <= 0).any():
        raise ValueError(f"a timed call took no measurable {kind} time; time larger batches or more repeats")
    est = stats.bootstrap_mean(np.log(a / b), statistic=lambda x, axis=-1: np.median(x, axis=axis))
    return stats.Estimate(float(np.exp(est.value)), float(np.exp(est.low)), float(np.exp(est.high)), est.n,
                          "bootstrap (median of paired ratios)", est.confidence)


# ------------------------------------------------------------------------------------ SST-2 and the cache
INITS = ("teacher", "pretrained")


@dataclass(frozen=True)
class StudentRecipe:
    """Everything that determines a distilled SST-2 student (and so its cache key)."""

    teacher: SST2Recipe = SST2Recipe()  # Chapter 10's full run: all of SST-2 train, one epoch
    layers: tuple[int, ...] = (0, 5)  # the layers the student keeps (of the teacher, or of the pretrained encoder)
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
    # where the student's weights start: "teacher" = the fine-tuned teacher's layers and head;
    # "pretrained" = the same layers of the pretrained encoder (never fine-tuned) and a new head,
    # as DistilBERT was initialised from the pretrained BERT
    init: str = "teacher"

    def __post_init__(self):
        def bad(what, value):
            return ValueError(f"StudentRecipe: {what}, got {value!r}")

        def is_int(v):
            return isinstance(v, int) and not isinstance(v, bool)

        if self.init not in INITS:
            raise bad(f"init must be one of {INITS}", self.init)
        if not isinstance(self.alpha, (int, float)) or isinstance(self.alpha, bool) or not 0 <= self.alpha <= 1:
            raise bad("alpha (the weight of the label loss) must lie in [0, 1]", self.alpha)
        if not isinstance(self.T, (int, float)) or isinstance(self.T, bool) or not 0 < self.T < float("inf"):
            raise bad("the temperature T must be a positive number", self.T)
        for name in ("train_size", "epochs", "batch_size", "max_len"):
            if not is_int(getattr(self, name)) or getattr(self, name) < 1:
                raise bad(f"{name} must be a positive int", getattr(self, name))
        if self.train_size > SST2_TRAIN_SIZE:
            raise bad(f"train_size is at most {SST2_TRAIN_SIZE:,} (all of SST-2 train)", self.train_size)
        if not (isinstance(self.lr, (int, float)) and 0 < self.lr < 1):
            raise bad("lr must lie in (0, 1)", self.lr)
        if not self.layers or not all(is_int(i) and i >= 0 for i in self.layers):
            raise bad("layers must be a non-empty tuple of layer indices", self.layers)
        if self.ffn is not None and (not is_int(self.ffn) or self.ffn < 1):
            raise bad("ffn must be a positive int or None", self.ffn)

    def key(self) -> str:
        fields = asdict(self)
        if self.init == "teacher":
            del fields["init"]  # students cached before ``init`` existed keep their key
        blob = json.dumps(fields, sort_keys=True).encode()
        start = "student-" if self.init == "teacher" else "student-pre-"
        return (f"{start}{len(self.layers)}l-ffn{self.ffn}-T{self.T:g}-a{self.alpha:g}-n{self.train_size}-"
                f"{hashlib.sha256(blob).hexdigest()[:10]}")

    def path(self) -> Path:
        return cache_root() / "finetuned" / self.key()

    def cached(self) -> bool:
        return (self.path() / "meta.json").exists()


def transfer_indices(n: int, seed: int) -> torch.Tensor:
    """Positions in SST-2 train of the transfer set of ``n`` sentences drawn with ``seed``: the
    same draw as ``load_sst2("train").subset(n, torch.Generator().manual_seed(seed))``."""
    return torch.randperm(SST2_TRAIN_SIZE, generator=torch.Generator().manual_seed(seed))[:n]


def teacher_train_logits(teacher_recipe: SST2Recipe, teacher: tuple[SentenceClassifier, object] | None = None,
                         compute: bool = True, device=None) -> torch.Tensor | None:
    """The teacher's logits (67,349, C) on all of SST-2 train, in file order.

    Kept next to the teacher's weights in the wmlib cache, so that every student of a study, on
    any transfer set, is trained against the same numbers (``logits[transfer_indices(n, seed)]``).
    With ``compute=False`` returns None when they are not cached yet.
    """
    from .data import load_sst2

    path = cache_root() / "finetuned" / teacher_recipe.key() / "train_logits.pt"
    if path.exists():
        return torch.load(path)
    if not compute:
        return None
    t_model, tok = teacher if teacher is not None else fine_tune_sst2(teacher_recipe, cache="use", device=device)[:2]
    logits = predict_logits(t_model, tok, load_sst2("train").texts, max_len=teacher_recipe.max_len)
    if path.parent.exists():
        try:
            tmp = path.with_name(path.name + ".tmp")
            torch.save(logits, tmp)
            tmp.rename(path)
        except OSError:
            pass
    return logits


def transfer_logits(recipe: StudentRecipe, teacher: SentenceClassifier, tokenizer,
                    transfer: LabelledTexts) -> torch.Tensor:
    """The teacher's logits on ``recipe``'s transfer set: rows of :func:`teacher_train_logits`
    when those are cached (what the recorded study used), else computed on ``transfer`` now."""
    full = teacher_train_logits(recipe.teacher, compute=False)
    if full is not None:
        return full[transfer_indices(recipe.train_size, recipe.seed)]
    return predict_logits(teacher, tokenizer, transfer.texts, max_len=recipe.max_len)


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
        teacher_logits = transfer_logits(recipe, t_model, tokenizer, transfer)
    if recipe.init == "teacher":
        source = t_model
    else:  # the pretrained encoder, not fine-tuned, with a new head
        from .models import load_encoder

        torch.manual_seed(recipe.seed)
        device_t = next(t_model.parameters()).device
        source = SentenceClassifier(load_encoder(recipe.teacher.model)[0], t_model.num_labels,
                                    pooling=t_model.pooling).to(device_t)
    student = make_student(source, recipe.layers, recipe.ffn, tokenizer, transfer.texts[:1000])
    if recipe.freeze_word_embeddings:
        freeze_word_embeddings(student)
    history = distill(student, tokenizer, transfer, teacher_logits, T=recipe.T, alpha=recipe.alpha,
                      epochs=recipe.epochs, batch_size=recipe.batch_size, lr=recipe.lr, max_len=recipe.max_len,
                      seed=recipe.seed, device=device,
                      desc=f"distilling a {len(recipe.layers)}-layer student (T={recipe.T:g}, alpha={recipe.alpha:g})")
    meta = {"model": recipe.teacher.model, "num_labels": 2, "layers": list(recipe.layers), "ffn": recipe.ffn,
            "init": recipe.init,
            "recipe": asdict(recipe), "train_seconds": history.seconds, "train_cpu_seconds": history.cpu_seconds,
            "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "losses": history.losses,
            "lrs": history.lrs, "examples": history.examples, "torch_threads": torch.get_num_threads()}
    if cache != "off":
        try:
            save_classifier(student, recipe.path(), meta)
        except OSError:
            pass  # a read-only cache only costs a retraining next time
    return student, tokenizer, {**meta, "history": history, "cached": False, "path": str(recipe.path())}


# ------------------------------------------------------------------------------------ Chapter 11's recorded study
@dataclass(frozen=True)
class DistillStudy:
    """Chapter 11's recorded study: which students are trained, on how much data, with which seeds.

    Every condition differs from ``base`` (teacher-initialised, T = 4, alpha = 0.5, 8,000 sentences,
    one epoch) in one respect only. A student's seed sets both its transfer set (a random draw
    from SST-2 train) and its training order; the teacher is the same for all. ``wmlib
    distill-sst2 --study`` runs it; ``wmlib/results/distill_sst2.json`` is its recorded result.
    """

    base: StudentRecipe = StudentRecipe()
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)  # the main comparisons and the data/epochs design
    sweep_seeds: tuple[int, ...] = (0, 1, 2)  # the temperature and alpha sweeps
    temperatures: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    alphas: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    # (transfer sentences, epochs) beside the base's: twice the steps as more epochs or as more data
    data_epochs: tuple[tuple[int, int], ...] = ((8000, 2), (16000, 1))
    full: tuple[int, int] = (SST2_TRAIN_SIZE, 2)  # the timed student of the chapter and its labels-only twin
    full_seeds: tuple[int, ...] = (0,)  # ~10 CPU-minutes each: one seed

    def __post_init__(self):
        for name in ("seeds", "sweep_seeds", "full_seeds"):
            v = getattr(self, name)
            if not v or len(set(v)) != len(v) or not all(isinstance(x, int) and x >= 0 for x in v):
                raise ValueError(f"DistillStudy.{name} must be distinct non-negative ints, got {v!r}")


def study_conditions(study: DistillStudy = DistillStudy()) -> dict[str, tuple[StudentRecipe, tuple[int, ...]]]:
    """``{name: (recipe, seeds)}`` for every condition of ``study``, cheapest first; each recipe
    has ``seed=0`` (the runs replace it). The teacher-initialised ``"distilled"`` student at T = 4,
    alpha = 0.5 is also the sweeps' T = 4 and alpha = 0.5 point, and ``"labels only"`` their
    alpha = 1 point (at alpha = 1 the temperature plays no part)."""
    from dataclasses import replace

    b = replace(study.base, seed=0)
    labels = replace(b, alpha=1.0, T=1.0)
    out = {"distilled": (b, study.seeds), "labels only": (labels, study.seeds),
           "pretrained, distilled": (replace(b, init="pretrained"), study.seeds),
           "pretrained, labels only": (replace(labels, init="pretrained"), study.seeds)}
    for T in study.temperatures:
        if float(T) != b.T:
            out[f"T={T:g}"] = (replace(b, T=float(T)), study.sweep_seeds)
    for a in study.alphas:
        if float(a) not in (b.alpha, 1.0):
            out[f"alpha={a:g}"] = (replace(b, alpha=float(a)), study.sweep_seeds)
    for n, e in study.data_epochs:
        if (n, e) != (b.train_size, b.epochs):
            out[f"n={n}, epochs={e}"] = (replace(b, train_size=n, epochs=e), study.seeds)
    n, e = study.full
    out["full, distilled"] = (replace(b, train_size=n, epochs=e), study.full_seeds)
    out["full, labels only"] = (replace(labels, train_size=n, epochs=e), study.full_seeds)
    return out


def _bits(correct) -> str:
    return "".join("1" if c else "0" for c in correct)


def run_study(study: DistillStudy = DistillStudy(), json_path: str | Path | None = None, device=None,
              command: str = "", log=print) -> dict:
    """Train (or load from the wmlib cache) every student of ``study`` and evaluate it on the
    SST-2 dev set. Returns the JSON-ready results, written to ``json_path`` after every student
    (an interrupted run resumes from the cache). Each run records which dev sentences it got
    right, so that a chapter can compute paired tests without the models."""
    import platform

    import numpy as np

    from .data import load_sst2
    from .finetune import evaluate

    start, cpu_start = time.perf_counter(), time.process_time()
    dev = load_sst2("dev")
    teacher, tok, t_info = fine_tune_sst2(study.base.teacher, cache="use", device=device)
    t_eval = evaluate(teacher, tok, dev, max_len=study.base.max_len)
    t_correct = (t_eval.predictions == t_eval.labels).numpy()
    logits = teacher_train_logits(study.base.teacher, (teacher, tok))
    train = load_sst2("train")
    conditions = study_conditions(study)
    out = {"command": command, "study": asdict(study), "dev_n": len(dev),
           "teacher": {"key": study.base.teacher.key(), "accuracy": t_eval.accuracy, "dev_correct": _bits(t_correct),
                       "train_cpu_seconds": t_info.get("train_cpu_seconds")},
           "conditions": {name: {"recipe": asdict(r), "seeds": list(seeds)} for name, (r, seeds) in conditions.items()},
           "runs": {name: {} for name in conditions}}
    from dataclasses import replace

    for name, (recipe, seeds) in conditions.items():
        for seed in seeds:
            r = replace(recipe, seed=seed)
            idx = transfer_indices(r.train_size, seed)
            transfer = LabelledTexts([train.texts[i] for i in idx], [train.labels[i] for i in idx], train.label_names,
                                     f"sst2-train[{r.train_size}]")
            model, _, info = distill_sst2(r, cache="use", device=device, teacher=(teacher, tok), transfer=transfer,
                                          teacher_logits=logits[idx])
            ev = evaluate(model, tok, dev, max_len=r.max_len)
            correct = (ev.predictions == ev.labels).numpy()
            out["runs"][name][str(seed)] = {
                "key": r.key(), "accuracy": ev.accuracy, "dev_correct": _bits(correct),
                "agree_with_teacher": float((ev.predictions == t_eval.predictions).float().mean()),
                "train_seconds": info["train_seconds"], "train_cpu_seconds": info.get("train_cpu_seconds"),
                "trained_in_this_run": not info["cached"]}
            log(f"{name:>24} seed {seed}: dev accuracy {ev.accuracy:.2%} "
                f"({'cached' if info['cached'] else 'trained'}; {info.get('train_cpu_seconds', 0):.0f} s CPU)")
            out.update(wall_seconds=time.perf_counter() - start, cpu_seconds=time.process_time() - cpu_start,
                       finished=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), machine=platform.machine(),
                       processor_count=os.cpu_count(), torch=torch.__version__, torch_threads=torch.get_num_threads())
            if json_path is not None:
                Path(json_path).parent.mkdir(parents=True, exist_ok=True)
                tmp = Path(str(json_path) + ".tmp")
                tmp.write_text(json.dumps(out, indent=1) + "\n")
                tmp.rename(json_path)
            del model
    out["complete"] = True
    if json_path is not None:
        Path(json_path).write_text(json.dumps(out, indent=1) + "\n")
    return out


def study_correct(results: dict, name: str) -> "np.ndarray":
    """Which dev sentences each seed of condition ``name`` got right: a bool array (seeds, dev_n),
    rows in the order of the recorded seeds. ``name="teacher"`` gives the teacher's (1, dev_n)."""
    import numpy as np

    if name == "teacher":
        rows = [results["teacher"]["dev_correct"]]
    else:
        if name not in results.get("runs", {}):
            raise KeyError(f"no condition {name!r} in the study; it has {sorted(results.get('runs', {}))}")
        runs = results["runs"][name]
        if not runs:
            raise ValueError(f"condition {name!r} has no finished run yet")
        rows = [runs[k]["dev_correct"] for k in sorted(runs, key=int)]
    return np.array([[c == "1" for c in row] for row in rows], dtype=bool)


def study_seeds(results: dict, name: str) -> list[int]:
    return sorted(int(k) for k in results["runs"][name])


@dataclass(frozen=True)
class SeedComparison:
    """Two conditions of a study compared on the same dev sentences, seed by seed.

    ``difference``: accuracy(A) - accuracy(B) of the seed-averaged predictions, with a paired
    bootstrap interval over the sentences and a sign-flip p-value (:func:`wmlib.stats.paired_difference`);
    ``per_seed``: the exact McNemar test of each seed (A's seed ``s`` against B's seed ``s``, which
    shared the transfer set and the training order); ``seed_differences``: the per-seed accuracy
    differences with a t interval over seeds (:func:`wmlib.stats.seed_spread`).
    """

    difference: object
    per_seed: list
    seed_differences: object

    @property
    def ahead(self) -> int:
        """Seeds in which A was more accurate than B."""
        return sum(m.only_a > m.only_b for m in self.per_seed)

    def verdict(self, a: str, b: str) -> str:
        """A sentence computed from the paired interval, with how many seeds agree."""
        from . import stats

        n = len(self.per_seed)
        text = stats.compare(self.difference, a, b, fmt="{:+.1%}", higher="more accurate", lower="less accurate")
        if n > 1:
            text += f"; {a} was ahead in {self.ahead} of {n} seeds"
        return text


def compare_seeds(correct_a, correct_b) -> SeedComparison:
    """Compare two conditions from their right/wrong arrays (seeds, sentences), row ``s`` of both
    being the same seed (see :func:`study_correct`)."""
    import numpy as np

    from . import stats

    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.ndim == 1:
        a, b = a[None], b[None] if b.ndim == 1 else b
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"correct_a and correct_b must both be (seeds, sentences) with the same seeds; got "
                         f"{a.shape} and {b.shape}")
    diff = stats.paired_difference(a.mean(0), b.mean(0))
    per_seed = [stats.mcnemar(a[i], b[i]) for i in range(len(a))]
    return SeedComparison(diff, per_seed, stats.seed_spread(a.mean(1) - b.mean(1)))


def study_recipes(base: StudentRecipe, temperatures: Sequence[float]) -> dict[str, StudentRecipe]:
    """The label-only baseline and one distilled student per temperature, all else equal."""
    from dataclasses import replace

    out = {"labels only": replace(base, alpha=1.0, T=1.0)}
    out.update({f"T={T:g}": replace(base, T=float(T)) for T in temperatures})
    return out
