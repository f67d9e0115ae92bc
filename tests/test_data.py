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
