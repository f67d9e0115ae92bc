"""wmlib.data: the checksummed cache and the bAbI loader, on the real files."""

import shutil
import urllib.request

import pytest

from wmlib import data
from wmlib.data import BABI_TASKS, DataIntegrityError, DataNotAvailable, load_babi, parse_babi


@pytest.fixture
def empty_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("WMLIB_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.mark.parametrize("task", sorted(BABI_TASKS))
def test_babi_1k_counts_and_supporting_facts(task):
    for split in ("train", "test"):
        examples = load_babi(task, split)
        assert len(examples) == 1000, "bAbI v1.2 en/ has 1,000 questions per task and split"
        for ex in examples:
            assert ex.question.endswith("?") and ex.answer and ex.story
            assert ex.supporting and all(0 <= i < len(ex.story) for i in ex.supporting)


def test_babi_first_example_is_parsed_exactly():
    ex = load_babi(1)[0]
    assert ex.story == ["Mary moved to the bathroom.", "John went to the hallway."]
    assert (ex.question, ex.answer, ex.supporting) == ("Where is Mary?", "bathroom", [0])


def test_babi_10k_and_names():
    assert len(load_babi("single-supporting-fact", "train", size="10k")) == 10_000
    assert load_babi("1", "test")[0].question == load_babi(1, "test")[0].question


def test_babi_bad_arguments():
    with pytest.raises(ValueError, match="1-20"):
        load_babi(21)
    with pytest.raises(ValueError, match="unknown bAbI task"):
        load_babi("no-such-task")
    with pytest.raises(ValueError, match="'train' or 'test'"):
        load_babi(1, "valid")
    with pytest.raises(ValueError, match="'1k' or '10k'"):
        load_babi(1, size="100")


def test_parse_babi_rejects_bad_lines():
    with pytest.raises(ValueError, match="line 1"):
        parse_babi("Mary moved.\n")
    with pytest.raises(ValueError, match="supporting fact"):
        parse_babi("1 Mary moved to the hall.\n2 Where is Mary?\thall\t7\n")


def test_corrupt_file_is_reported(empty_data_dir):
    rel = "babi/tasks_1-20_v1-2/en/qa1_single-supporting-fact_test.txt"
    (empty_data_dir / rel).parent.mkdir(parents=True)
    (empty_data_dir / rel).write_text("1 Mary moved to the kitchen.\n")
    with pytest.raises(DataIntegrityError, match="sha256.*Delete it"):
        data.fetch(rel)


def test_good_copy_is_accepted(tmp_path, monkeypatch):
    real = data.fetch("sst2/dev.tsv")  # from the configured cache (shared/data in CI)
    monkeypatch.setenv("WMLIB_DATA_DIR", str(tmp_path))
    (tmp_path / "sst2").mkdir()
    shutil.copy(real, tmp_path / "sst2/dev.tsv")
    assert data.fetch("sst2/dev.tsv") == tmp_path / "sst2/dev.tsv"


def test_download_failure_explains_both_ways_out(empty_data_dir, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    with pytest.raises(DataNotAvailable) as err:
        load_babi(2, "test")
    msg = str(err.value)
    assert "dl.fbaipublicfiles.com" in msg and "WMLIB_DATA_DIR" in msg and "network unreachable" in msg


def test_download_verifies_and_extracts(tmp_path, monkeypatch):
    """Serve a tar.gz built from the real file in place of the official archive."""
    import io
    import tarfile

    real = data.fetch("babi/tasks_1-20_v1-2/en/qa1_single-supporting-fact_test.txt")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(real, arcname="tasks_1-20_v1-2/en/qa1_single-supporting-fact_test.txt")
    monkeypatch.setenv("WMLIB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(data, "_download", lambda url: buf.getvalue())
    assert len(load_babi(1, "test")) == 1000
    assert (tmp_path / "data/babi/tasks_1-20_v1-2/en/qa1_single-supporting-fact_test.txt").exists()


def test_unknown_file():
    with pytest.raises(DataNotAvailable, match="Known data sets"):
        data.fetch("imagenet/train.tar")


# ------------------------------------------------------------------ SST-2 and Financial PhraseBank
from wmlib.data import LabelledTexts, load_financial_phrasebank, load_sst2  # noqa: E402
from wmlib.finetune import SST2_TRAIN_SIZE  # noqa: E402


def test_sst2_counts_and_format():
    train, dev = load_sst2("train"), load_sst2("dev")
    assert (len(train), len(dev)) == (SST2_TRAIN_SIZE, 872)
    assert train.counts() == {"negative": 29_780, "positive": 37_569}
    assert dev.counts() == {"negative": 428, "positive": 444}
    assert dev.texts[0] == "it 's a charming and often affecting journey ." and dev.labels[0] == 1
    # the space GLUE leaves before the tab is stripped, and quote characters survive (QUOTE_NONE)
    assert not any(t != t.strip() for t in train.texts[:5000])
    assert any("``" in t or "''" in t for t in dev.texts)
    assert load_sst2("validation").texts == dev.texts


def test_phrasebank_counts_encoding_and_labels():
    allagree, fifty = load_financial_phrasebank("all"), load_financial_phrasebank("50")
    assert allagree.counts() == {"negative": 303, "neutral": 1391, "positive": 570}
    assert fifty.counts() == {"negative": 604, "neutral": 2879, "positive": 1363}
    assert set(allagree.texts) <= set(fifty.texts)
    assert not any(t.endswith(("@neutral", "@positive", "@negative")) for t in allagree.texts)
    assert load_financial_phrasebank("AllAgree").texts == allagree.texts
    assert load_financial_phrasebank(50).labels == fifty.labels


def test_sentence_loaders_reject_bad_arguments():
    with pytest.raises(ValueError, match="'train' or 'dev'"):
        load_sst2("test")
    with pytest.raises(ValueError, match="'all' or '50'"):
        load_financial_phrasebank("75")


def test_labelled_texts_subset_and_checks():
    import torch

    d = LabelledTexts(["a", "b", "c", "d"], [0, 1, 0, 1], ("neg", "pos"))
    s1 = d.subset(3, torch.Generator().manual_seed(0))
    s2 = d.subset(3, torch.Generator().manual_seed(0))
    assert s1.texts == s2.texts and len(set(s1.texts)) == 3
    assert all(d.labels[d.texts.index(t)] == y for t, y in zip(s1.texts, s1.labels))
    assert d.subset(2).texts == ["a", "b"]
    with pytest.raises(ValueError, match="between 1 and 4"):
        d.subset(5)
    with pytest.raises(ValueError, match="2 texts but 1 labels"):
        LabelledTexts(["a", "b"], [0], ("neg", "pos"))
    with pytest.raises(ValueError, match="labels must lie in 0..1"):
        LabelledTexts(["a"], [2], ("neg", "pos"))


def test_phrasebank_malformed_line_is_reported(empty_data_dir, monkeypatch):
    from pathlib import Path

    bad = empty_data_dir / "bad.txt"
    bad.parent.mkdir(parents=True)
    bad.write_bytes("Profit rose .@positive\nno label here\n".encode("iso-8859-1"))
    monkeypatch.setattr(data, "fetch", lambda rel: Path(bad))
    with pytest.raises(ValueError, match="line 2: expected 'sentence@label'"):
        load_financial_phrasebank("all")
