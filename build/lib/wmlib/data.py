"""Data sets in a checksummed cache, and their loaders: bAbI (Chapter 8), SST-2 and the Financial
PhraseBank (Chapters 10 and 11).

The cache is a folder laid out like the book's ``shared/data`` folder::

    <data dir>/babi/tasks_1-20_v1-2/en/qa1_single-supporting-fact_train.txt
    <data dir>/sst2/train.tsv
    <data dir>/financial_phrasebank/Sentences_AllAgree.txt

``<data dir>`` is ``$WMLIB_DATA_DIR`` when set, else ``<user cache>/wmlib/data``. A file missing
from it is downloaded, as part of its official archive, and every file is checked against the
sha256 listed in ``wmlib/data_checksums.txt`` before it is used.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

__all__ = [
    "cache_root", "data_dir", "fetch", "DataNotAvailable", "DataIntegrityError",
    "BABI_TASKS", "BabiExample", "load_babi",
    "LabelledTexts", "load_sst2", "load_financial_phrasebank",
]


class DataNotAvailable(RuntimeError):
    """A data file is missing and could not be downloaded."""


class DataIntegrityError(RuntimeError):
    """A data file's checksum does not match the published one."""


def cache_root() -> Path:
    """``$WMLIB_CACHE_DIR`` or the user's cache folder (e.g. ~/.cache/wmlib): models, downloads."""
    env = os.environ.get("WMLIB_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("wmlib"))


def data_dir() -> Path:
    """Where data sets live: ``$WMLIB_DATA_DIR`` or ``<cache root>/data``."""
    env = os.environ.get("WMLIB_DATA_DIR")
    return Path(env).expanduser() if env else cache_root() / "data"


@dataclass(frozen=True)
class _Source:
    folder: str  # the data set's folder in the cache
    urls: tuple[str, ...]  # official archive, then mirrors
    member_prefix: str  # the archive's path that corresponds to `folder`
    licence: str


_SOURCES = (
    _Source("babi/tasks_1-20_v1-2/", (
        "https://dl.fbaipublicfiles.com/babi/tasks_1-20_v1-2.tar.gz",
        "http://www.thespermwhale.com/jaseweston/babi/tasks_1-20_v1-2.tar.gz",
    ), "tasks_1-20_v1-2/", "CC BY 3.0 (Weston et al., 2015)"),
    _Source("sst2/", ("https://dl.fbaipublicfiles.com/glue/data/SST-2.zip",), "SST-2/",
            "research use (Socher et al., 2013; GLUE)"),
    _Source("financial_phrasebank/", (
        "https://huggingface.co/datasets/takala/financial_phrasebank/resolve/main/data/FinancialPhraseBank-v1.0.zip",
    ), "FinancialPhraseBank-v1.0/", "CC BY-NC-SA 3.0 (Malo et al., 2014)"),
)


@lru_cache(maxsize=None)
def _checksums() -> dict[str, str]:
    table = {}
    text = (Path(__file__).parent / "data_checksums.txt").read_text()
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            digest, rel = line.split(maxsplit=1)
            table[rel.strip()] = digest
    return table


def _digest(data_or_path, kind: str) -> str:
    if kind == "git-blob":  # git's object id: sha1 of "blob <size>\0" + content
        data = Path(data_or_path).read_bytes() if isinstance(data_or_path, Path) else data_or_path
        return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    h = hashlib.sha256()
    if isinstance(data_or_path, Path):
        with open(data_or_path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    else:
        h.update(data_or_path)
    return h.hexdigest()


def _expected(rel: str) -> tuple[str, str]:
    entry = _checksums().get(rel)
    if entry is None:
        known = sorted({r.split("/")[0] for r in _checksums()})
        raise DataNotAvailable(f"{rel!r} is not a file wmlib knows. Known data sets: {known}")
    kind, _, digest = entry.rpartition(":")
    return (kind or "sha256"), digest


@lru_cache(maxsize=None)
def _verified(path: str, size: int, mtime: float, rel: str) -> bool:
    kind, want = _expected(rel)
    got = _digest(Path(path), kind)
    if got != want:
        raise DataIntegrityError(
            f"{path} is corrupt or not the published file: its {kind} is {got}, expected {want}. "
            "Delete it and run again to download a fresh copy."
        )
    return True


def _source_for(rel: str) -> _Source:
    for src in _SOURCES:
        if rel.startswith(src.folder):
            return src
    raise DataNotAvailable(f"no download is known for {rel!r}")


def _download(url: str) -> bytes:
    from .utils import progress

    with urllib.request.urlopen(url, timeout=60) as resp:
        total = int(resp.headers.get("Content-Length") or 0) or None
        buf = io.BytesIO()
        chunks = iter(lambda: resp.read(1 << 20), b"")
        for chunk in progress(chunks, desc=f"downloading {url.rsplit('/', 1)[-1]}",
                              total=total and -(-total // (1 << 20)), unit="MiB"):
            buf.write(chunk)
    return buf.getvalue()


def _members(archive: bytes, url: str):
    """Yield (name, bytes) for the regular files of a .tar.gz or .zip archive."""
    if url.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(archive)) as z:
            for info in z.infolist():
                if not info.is_dir():
                    yield info.filename, z.read(info)
    else:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as t:
            for m in t.getmembers():
                if m.isfile():
                    yield m.name, t.extractfile(m).read()


def _fetch_source(src: _Source, root: Path) -> None:
    errors = []
    for url in src.urls:
        try:
            archive = _download(url)
            break
        except Exception as err:  # network errors come in many types
            errors.append(f"{url}: {type(err).__name__}: {err}")
    else:
        raise DataNotAvailable(
            f"Could not download the {src.folder.split('/')[0]} data set:\n  " + "\n  ".join(errors) +
            f"\nEither download {src.urls[0]} by hand and unpack it so that its files lie under "
            f"{root / src.folder}, or set WMLIB_DATA_DIR to a folder that already has them "
            "(for instance the book's shared/data folder)."
        )
    wanted = {rel for rel in _checksums() if rel.startswith(src.folder)}
    written = 0
    for name, content in _members(archive, url):
        name = re.sub(r"^\./", "", name)
        if not name.startswith(src.member_prefix):
            continue
        rel = src.folder + name[len(src.member_prefix):]
        if rel not in wanted:
            continue
        kind, want = _expected(rel)
        if _digest(content, kind) != want:
            raise DataIntegrityError(f"{rel} in the archive from {url} does not match its published {kind}")
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as tmp:
            tmp.write(content)
        shutil.move(tmp.name, dest)
        written += 1
    if written == 0:
        raise DataNotAvailable(f"the archive from {url} held none of the expected files under {src.member_prefix}")


def fetch(rel: str) -> Path:
    """Return the local path of data file ``rel`` (relative to the data dir), checked against its
    published checksum; download its archive first if the file is missing."""
    root = data_dir()
    path = root / rel
    if not path.exists():
        _expected(rel)  # fail early, with the list of known data sets, on a typo
        try:
            root.mkdir(parents=True, exist_ok=True)
            writable = os.access(root, os.W_OK)
        except OSError:
            writable = False
        if not writable:
            raise DataNotAvailable(f"{path} is missing and the data dir {root} is not writable; "
                                   "set WMLIB_DATA_DIR to a writable folder")
        _fetch_source(_source_for(rel), root)
        if not path.exists():
            raise DataNotAvailable(f"{rel} was not in the downloaded archive")
    st = path.stat()
    _verified(str(path), st.st_size, st.st_mtime, rel)
    return path


# ---------------------------------------------------------------------------------------- bAbI
BABI_TASKS = {
    1: "single-supporting-fact", 2: "two-supporting-facts", 3: "three-supporting-facts",
    4: "two-arg-relations", 5: "three-arg-relations", 6: "yes-no-questions", 7: "counting",
    8: "lists-sets", 9: "simple-negation", 10: "indefinite-knowledge", 11: "basic-coreference",
    12: "conjunction", 13: "compound-coreference", 14: "time-reasoning", 15: "basic-deduction",
    16: "basic-induction", 17: "positional-reasoning", 18: "size-reasoning", 19: "path-finding",
    20: "agents-motivations",
}


@dataclass
class BabiExample:
    """One bAbI question with the story told before it.

    ``story``: the statements so far (questions removed), oldest first; ``supporting``: indices
    into ``story`` of the facts that answer the question; ``answer``: e.g. "bathroom", or
    "apple,football" (task 8) and "n,w" (task 19).
    """

    story: list[str]
    question: str
    answer: str
    supporting: list[int]
    task: int = 0
    lines: list[int] = field(default_factory=list, repr=False)  # the original line IDs of `story`


def _task_number(task) -> int:
    if isinstance(task, str):
        by_name = {v: k for k, v in BABI_TASKS.items()}
        if task.isdigit():
            task = int(task)
        elif task in by_name:
            return by_name[task]
        else:
            raise ValueError(f"unknown bAbI task {task!r}; use 1-20 or one of {list(BABI_TASKS.values())}")
    if task not in BABI_TASKS:
        raise ValueError(f"bAbI task must be 1-20, got {task!r}")
    return task


def parse_babi(text: str, task: int = 0) -> list[BabiExample]:
    """Parse the text of one bAbI file into examples (see the module docs for the format)."""
    examples: list[BabiExample] = []
    story: list[str] = []
    ids: list[int] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        num, _, rest = raw.partition(" ")
        if not num.isdigit():
            raise ValueError(f"line {lineno} does not start with a line number: {raw!r}")
        if int(num) == 1:
            story, ids = [], []
        if "\t" in rest:
            question, answer, support = rest.split("\t")
            where = {line_id: i for i, line_id in enumerate(ids)}
            try:
                supporting = [where[int(s)] for s in support.split()]
            except KeyError as err:
                raise ValueError(f"line {lineno}: supporting fact {err} is not a statement of this story") from None
            examples.append(BabiExample(list(story), question.strip(), answer.strip(), supporting, task, list(ids)))
        else:
            story.append(rest.strip())
            ids.append(int(num))
    return examples


def load_babi(task, split: str = "train", size: str = "1k") -> list[BabiExample]:
    """The questions of bAbI v1.2 task ``task`` (1-20 or its name), ``split`` "train" or "test",
    ``size`` "1k" (1,000 questions per split) or "10k"."""
    n = _task_number(task)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r} (bAbI v1.2 has no separate valid split)")
    folders = {"1k": "en", "10k": "en-10k"}
    if size not in folders:
        raise ValueError(f"size must be '1k' or '10k', got {size!r}")
    rel = f"babi/tasks_1-20_v1-2/{folders[size]}/qa{n}_{BABI_TASKS[n]}_{split}.txt"
    return parse_babi(fetch(rel).read_text(encoding="ascii"), task=n)


# --------------------------------------------------------------------- sentence classification
@dataclass(frozen=True)
class LabelledTexts:
    """Sentences with integer labels: ``texts[i]`` has label ``labels[i]``, whose name is
    ``label_names[labels[i]]``."""

    texts: list[str]
    labels: list[int]
    label_names: tuple[str, ...]
    name: str = ""

    def __post_init__(self):
        if len(self.texts) != len(self.labels):
            raise ValueError(f"{len(self.texts)} texts but {len(self.labels)} labels")
        bad = [y for y in self.labels if not 0 <= y < len(self.label_names)]
        if bad:
            raise ValueError(f"labels must lie in 0..{len(self.label_names) - 1} ({self.label_names}); got {bad[:5]}")

    def __len__(self) -> int:
        return len(self.texts)

    def counts(self) -> dict[str, int]:
        """Examples per class, by label name."""
        return {name: sum(y == i for y in self.labels) for i, name in enumerate(self.label_names)}

    def subset(self, n: int, generator=None) -> "LabelledTexts":
        """``n`` examples drawn without replacement (in a random order set by the torch
        ``generator``; the first ``n`` in file order when ``generator`` is None)."""
        if not 0 < n <= len(self):
            raise ValueError(f"n must be between 1 and {len(self)} (the size of {self.name or 'the set'}), got {n}")
        if generator is None:
            idx = list(range(n))
        else:
            import torch

            idx = torch.randperm(len(self), generator=generator)[:n].tolist()
        return LabelledTexts([self.texts[i] for i in idx], [self.labels[i] for i in idx], self.label_names,
                             f"{self.name}[{n}]")


def load_sst2(split: str = "train") -> LabelledTexts:
    """SST-2 as in GLUE {Socher et al. 2013; Wang et al. 2019}: ``split`` "train" (67,349 phrases and
    sentences) or "dev" (872 sentences); labels 0 = negative, 1 = positive. The text is GLUE's:
    lower-cased and tokenised ("it 's", "do n't")."""
    import csv

    files = {"train": "sst2/train.tsv", "dev": "sst2/dev.tsv", "validation": "sst2/dev.tsv"}
    if split not in files:
        raise ValueError(f"split must be 'train' or 'dev', got {split!r} (the GLUE test split has no public labels)")
    texts, labels = [], []
    with open(fetch(files[split]), encoding="utf-8", newline="") as f:
        # QUOTE_NONE: the sentences contain quote characters (`` and '') that are not CSV quoting.
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        if header != ["sentence", "label"]:
            raise ValueError(f"{files[split]}: unexpected header {header}")
        for row in reader:
            texts.append(row[0].strip())  # every GLUE sentence ends with a space before the tab
            labels.append(int(row[1]))
    return LabelledTexts(texts, labels, ("negative", "positive"), f"sst2/{'dev' if split != 'train' else split}")


PHRASEBANK_LABELS = ("negative", "neutral", "positive")


def load_financial_phrasebank(agree: str = "all") -> LabelledTexts:
    """The Financial PhraseBank v1.0 {Malo et al. 2014}: sentences from financial news labelled
    from an investor's point of view. ``agree="all"``: the 2,264 sentences all annotators agreed
    on; ``"50"``: the 4,846 sentences a majority agreed on. Labels 0 = negative, 1 = neutral,
    2 = positive."""
    files = {"all": "Sentences_AllAgree.txt", "50": "Sentences_50Agree.txt"}
    agree = str(agree).lower().removesuffix("agree").removesuffix("%")
    if agree not in files:
        raise ValueError(f"agree must be 'all' or '50', got {agree!r} (the 66 % and 75 % files are not included)")
    rel = f"financial_phrasebank/{files[agree]}"
    texts, labels = [], []
    # The release is Latin-1, not UTF-8; each line is `sentence@label`, split on the last @.
    for lineno, line in enumerate(fetch(rel).read_text(encoding="iso-8859-1").splitlines(), start=1):
        if not line.strip():
            continue
        sentence, sep, label = line.rpartition("@")
        if not sep or label.strip() not in PHRASEBANK_LABELS:
            raise ValueError(f"{rel} line {lineno}: expected 'sentence@label', got {line[:80]!r}")
        texts.append(sentence.strip())
        labels.append(PHRASEBANK_LABELS.index(label.strip()))
    return LabelledTexts(texts, labels, PHRASEBANK_LABELS, f"phrasebank/{agree}agree")
