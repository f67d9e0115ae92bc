"""wmlib.finetune: the classifier, its training loop, evaluation, timing and the cache."""

import numpy as np
import pytest
import torch

from wmlib.data import LabelledTexts
from wmlib.finetune import (SentenceClassifier, SST2Recipe, count_parameters, evaluate, fine_tune_sst2, keep_layers,
                            freeze_word_embeddings, prune_feed_forward,
                            latency_ms, length_bucketed_batches, linear_warmup_decay, load_classifier,
                            mean_pool, predict_logits, save_classifier, tokenize, train_classifier)


@pytest.fixture(scope="module")
def tokenizer():
    from wmlib.models import load_encoder

    return load_encoder("minilm-l6")[1]


def tiny_encoder(vocab_size, seed=0):
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64)
    return BertModel(cfg, add_pooling_layer=False)


@pytest.fixture
def tiny(tokenizer):
    return SentenceClassifier(tiny_encoder(tokenizer.vocab_size), num_labels=2).eval()


def toy_sentiment(n=96, seed=0):
    """Sentences whose label is set by one word: learnable in a few steps by any classifier."""
    g = torch.Generator().manual_seed(seed)
    fillers = ["the film", "this movie", "a story", "the plot of it", "the actors in the end"]
    texts, labels = [], []
    for i in range(n):
        y = int(torch.randint(2, (1,), generator=g))
        filler = fillers[int(torch.randint(len(fillers), (1,), generator=g))]
        texts.append(f"{filler} is {'wonderful' if y else 'terrible'}")
        labels.append(y)
    return LabelledTexts(texts, labels, ("negative", "positive"), "toy")


def test_mean_pool_ignores_padding():
    h = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert torch.equal(mean_pool(h, mask), torch.tensor([[2.0, 3.0]]))
    with pytest.raises(ValueError, match="mean_pool needs"):
        mean_pool(h, torch.ones(1, 2))


def test_logits_do_not_depend_on_the_batch(tiny, tokenizer):
    """A sentence padded inside a batch of longer ones gets the same logits as alone."""
    texts = ["short", "a much longer sentence with many more words in it than the first"]
    enc = tokenize(tokenizer, texts)
    with torch.no_grad():
        both = tiny(**enc)
        alone = tiny(**tokenize(tokenizer, texts[:1]))
    assert both.shape == (2, 2)
    assert torch.allclose(both[0], alone[0], atol=1e-5)


def test_cls_pooling_and_bad_constructor_arguments(tokenizer):
    enc = tiny_encoder(tokenizer.vocab_size)
    model = SentenceClassifier(enc, num_labels=3, pooling="cls").eval()
    assert model(**tokenize(tokenizer, ["a", "b c"])).shape == (2, 3)
    with pytest.raises(ValueError, match="pooling"):
        SentenceClassifier(enc, 2, pooling="max")
    with pytest.raises(ValueError, match="at least 2"):
        SentenceClassifier(enc, 1)
    with pytest.raises(ValueError, match="hidden_size"):
        SentenceClassifier(torch.nn.Linear(2, 2), 2)


def test_bad_inputs_get_clear_errors(tiny, tokenizer):
    enc = tokenize(tokenizer, ["good", "bad movie"])
    pooled = torch.randn(2, 32)
    with pytest.raises(ValueError, match="pass token ids, not hidden states"):
        tiny(pooled, enc["attention_mask"])  # the source documents' mistake: a pooled vector as input
    with pytest.raises(ValueError, match="shape of input_ids"):
        tiny(enc["input_ids"], enc["attention_mask"][:, :1])
    with pytest.raises(ValueError, match="all zero"):
        tiny(enc["input_ids"], torch.zeros_like(enc["attention_mask"]))
    with pytest.raises(ValueError, match="1 .* or 0"):
        tiny(enc["input_ids"], enc["attention_mask"] * 0.5 + 0.25)
    with pytest.raises(TypeError, match="tensor of token ids"):
        tiny([[101, 102]])
    with pytest.raises(TypeError, match="list of strings"):
        tokenize(tokenizer, "one sentence")


def test_tokenize_truncates_and_masks(tokenizer):
    enc = tokenize(tokenizer, ["word " * 200, "hi"], max_len=16)
    assert enc["input_ids"].shape == (2, 16)
    assert enc["attention_mask"][1].sum() == 3  # [CLS] hi [SEP]
    assert enc["input_ids"][0, -1] == tokenizer.sep_token_id


def test_length_buckets_cover_every_index_once():
    lengths = [int(x) for x in torch.randint(1, 60, (1000,), generator=torch.Generator().manual_seed(0))]
    batches = length_bucketed_batches(lengths, 32, torch.Generator().manual_seed(1), pool=5)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(1000)) and max(len(b) for b in batches) == 32
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    # random batches of 32 lengths drawn from 1..59 span about 55; sorted pools of 160 about 12
    assert spread < 20, "batches should hold sentences of similar length"
    with pytest.raises(ValueError, match="batch_size"):
        length_bucketed_batches(lengths, 0)


def test_warmup_then_linear_decay():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = linear_warmup_decay(opt, warmup_steps=4, total_steps=12)
    lrs = []
    for _ in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:5] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert lrs[4:] == sorted(lrs[4:], reverse=True) and lrs[-1] == pytest.approx(1 / 8)
    with pytest.raises(ValueError, match="warmup_steps"):
        linear_warmup_decay(opt, 10, 5)
    from transformers import get_linear_schedule_with_warmup

    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    theirs = get_linear_schedule_with_warmup(opt2, 4, 12)
    assert [theirs.lr_lambdas[0](s) for s in range(13)] == [sched.lr_lambdas[0](s) for s in range(13)]


def test_training_learns_a_toy_task_and_is_deterministic(tokenizer):
    data = toy_sentiment()
    runs = []
    for _ in range(2):
        model = SentenceClassifier(tiny_encoder(tokenizer.vocab_size), 2)
        history = train_classifier(model, tokenizer, data, epochs=4, batch_size=16, lr=3e-3, seed=0)
        runs.append((model, history))
    (model, history), (_, again) = runs
    assert history.losses == again.losses, "same seed, same run"
    assert history.steps == 4 * 6 and history.examples == 4 * 96 and history.seconds > 0
    assert 0 < history.cpu_seconds
    assert not model.training
    result = evaluate(model, tokenizer, toy_sentiment(64, seed=1))
    assert result.accuracy >= 0.95, result.accuracy
    assert torch.equal(result.predictions, result.logits.argmax(-1))


def test_custom_loss_receives_example_indices(tiny, tokenizer):
    data = toy_sentiment(40)
    seen = []

    def loss_fn(logits, labels, index):
        seen.extend(index.tolist())
        assert torch.equal(labels, torch.tensor(data.labels)[index])
        return logits.logsumexp(-1).mean()

    train_classifier(tiny, tokenizer, data, batch_size=16, loss_fn=loss_fn)
    assert sorted(seen) == list(range(40))


def test_training_rejects_bad_arguments(tiny, tokenizer):
    with pytest.raises(ValueError, match="epochs"):
        train_classifier(tiny, tokenizer, toy_sentiment(8), epochs=0)
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        train_classifier(tiny, tokenizer, toy_sentiment(8), loss_fn=lambda lg, y, i: lg.sum() * float("nan"))


def test_predictions_keep_the_order_of_the_texts(tiny, tokenizer):
    texts = ["a b c d e f", "a", "a b c", "a b"]
    batched = predict_logits(tiny, tokenizer, texts, batch_size=2)
    one_by_one = torch.cat([predict_logits(tiny, tokenizer, [t]) for t in texts])
    assert torch.allclose(batched, one_by_one, atol=1e-5)
    with pytest.raises(ValueError, match="predicts 2 classes"):
        evaluate(tiny, tokenizer, LabelledTexts(["x"], [2], ("a", "b", "c")))


def test_latency_and_parameter_count(tiny, tokenizer):
    ms = latency_ms(tiny, tokenizer, ["a good film"] * 8, batch_size=4, repeats=3, warmup=1)
    assert 0 < ms < 10_000
    with pytest.raises(ValueError, match="at least batch_size"):
        latency_ms(tiny, tokenizer, ["x"], batch_size=2)
    shared = torch.nn.Linear(3, 3)
    assert count_parameters(torch.nn.Sequential(shared, shared)) == 12
    assert count_parameters(tiny) == sum(p.numel() for p in tiny.parameters())


@pytest.mark.slow
def test_save_load_and_the_sst2_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WMLIB_CACHE_DIR", str(tmp_path))
    recipe = SST2Recipe(train_size=64, batch_size=32)
    model, tok, info = fine_tune_sst2(recipe)
    assert not info["cached"] and info["history"].steps == 2
    again, _, info2 = fine_tune_sst2(recipe)
    assert info2["cached"] and info2["history"].losses == info["history"].losses
    # the cached run keeps its timings, so a chapter that loads it can say how long it took
    assert info2["history"].seconds == info["history"].seconds > 0
    assert info2["history"].cpu_seconds == info["history"].cpu_seconds > 0 and info2["finished"]
    assert not fine_tune_sst2(recipe, cache="refresh")[2]["cached"]
    with pytest.raises(ValueError, match="cache must be"):
        fine_tune_sst2(recipe, cache="yes")
    texts = ["a gorgeous , witty film", "dull and lifeless"]
    assert torch.allclose(predict_logits(model, tok, texts), predict_logits(again, tok, texts), atol=1e-5)
    with pytest.raises(ValueError, match="meta needs"):
        save_classifier(model, tmp_path / "x", {"model": "minilm-l6"})
    with pytest.raises(FileNotFoundError, match="no saved classifier"):
        load_classifier(tmp_path / "nothing")
    assert SST2Recipe(seed=1).key() != SST2Recipe().key()


def test_keep_layers_makes_a_shallower_copy(tokenizer):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64)
    teacher = SentenceClassifier(BertModel(cfg, add_pooling_layer=False), 2).eval()
    student = keep_layers(teacher, [0, 2]).eval()
    assert len(teacher.encoder.encoder.layer) == 3 and len(student.encoder.encoder.layer) == 2
    assert student.encoder.config.num_hidden_layers == 2 and teacher.encoder.config.num_hidden_layers == 3
    assert torch.equal(student.encoder.encoder.layer[1].output.dense.weight,
                       teacher.encoder.encoder.layer[2].output.dense.weight)
    assert student.head.weight.data_ptr() != teacher.head.weight.data_ptr(), "a copy, not shared weights"
    enc = tokenize(tokenizer, ["a fine film", "no"])
    with torch.no_grad():
        # keeping every layer gives back the teacher's function exactly
        assert torch.allclose(keep_layers(teacher, [0, 1, 2])(**enc), teacher(**enc), atol=1e-6)
        assert student(**enc).shape == (2, 2)
    per_layer = count_parameters(teacher.encoder.encoder.layer[0])
    assert count_parameters(teacher) - count_parameters(student) == per_layer
    for bad in ([], [3], [-1]):
        with pytest.raises(ValueError, match="indices in 0..2"):
            keep_layers(teacher, bad)
    with pytest.raises(TypeError, match="BERT-style"):
        keep_layers(torch.nn.Linear(2, 2), [0])


def test_prune_feed_forward_keeps_the_most_used_units(tokenizer):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64)
    model = SentenceClassifier(BertModel(cfg, add_pooling_layer=False), 2).eval()
    texts = ["a fine film", "no", "the plot is thin but the actors are wonderful"]
    enc = tokenize(tokenizer, texts)
    with torch.no_grad():
        same = prune_feed_forward(model, 64, tokenizer, texts)
        assert torch.allclose(same(**enc), model(**enc), atol=1e-5), "keeping every unit changes nothing"
        # a unit whose output weights are zero contributes nothing: it must be the first to go
        model.encoder.encoder.layer[0].output.dense.weight[:, 5] = 0
        model.encoder.encoder.layer[1].output.dense.weight[:, 7] = 0
        pruned = prune_feed_forward(model, 63, tokenizer, texts)
        assert torch.allclose(pruned(**enc), model(**enc), atol=1e-5)
        half = prune_feed_forward(model, 32)  # data-free importance
        assert half(**enc).shape == (3, 2)
    assert half.encoder.config.intermediate_size == 32 and model.encoder.config.intermediate_size == 64
    assert half.encoder.encoder.layer[1].intermediate.dense.weight.shape == (32, 32)
    assert count_parameters(model) - count_parameters(half) == 2 * (32 * 32 * 2 + 32)
    with pytest.raises(ValueError, match="between 1 and the feed-forward width 64"):
        prune_feed_forward(model, 65)
    with pytest.raises(ValueError, match="both tokenizer and texts"):
        prune_feed_forward(model, 8, tokenizer=tokenizer)


def test_frozen_word_embeddings_do_not_move(tiny, tokenizer):
    before = tiny.encoder.embeddings.word_embeddings.weight.clone()
    head_before = tiny.head.weight.clone()
    assert freeze_word_embeddings(tiny) is tiny
    assert count_parameters(tiny, trainable_only=True) == count_parameters(tiny) - before.numel()
    train_classifier(tiny.train(), tokenizer, toy_sentiment(32), batch_size=16, lr=1e-2)
    assert torch.equal(tiny.encoder.embeddings.word_embeddings.weight, before)
    assert not torch.equal(tiny.head.weight, head_before), "the rest of the model still trains"
    with pytest.raises(TypeError, match="BERT-style"):
        freeze_word_embeddings(torch.nn.Linear(2, 2))


def test_cli_trains_caches_and_reports(tmp_path, monkeypatch, capsys, tokenizer):
    """The command's plumbing on a tiny random BERT (with MiniLM's tokenizer): train, report, cache."""
    from wmlib.cli import main

    monkeypatch.setenv("WMLIB_CACHE_DIR", str(tmp_path))
    folder = tmp_path / "tiny-bert"
    tiny_encoder(tokenizer.vocab_size).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    args = ["finetune-sst2", "--model", str(folder), "--train-size", "64", "--max-len", "32", "--device", "cpu"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "s wall" in first and "s CPU" in first and "SST-2 dev accuracy" in first and "(872 sentences)" in first
    assert main(args) == 0
    assert "loaded from the cache" in capsys.readouterr().out
    assert main(["finetune-sst2", "--train-size", "0"]) == 2  # a clear error, not a traceback
    assert "train" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ encoder families
def tiny_family_encoder(family, vocab_size, layers=3, seed=0):
    """A tiny random encoder of each supported family, built offline from its config."""
    import transformers

    torch.manual_seed(seed)
    if family == "bert":
        cfg = transformers.BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=layers,
                                      num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
        return transformers.BertModel(cfg)  # with its pooler, which the classifier must not need
    if family == "distilbert":
        cfg = transformers.DistilBertConfig(vocab_size=vocab_size, dim=32, n_layers=layers, n_heads=2, hidden_dim=64,
                                            max_position_embeddings=64)
        return transformers.DistilBertModel(cfg)
    cfg = transformers.ModernBertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=layers,
                                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                                        global_attn_every_n_layers=2, local_attention=8, pad_token_id=0,
                                        bos_token_id=101, eos_token_id=102, cls_token_id=101, sep_token_id=102)
    return transformers.ModernBertModel(cfg)


FAMILIES = ["bert", "distilbert", "modernbert"]


@pytest.mark.parametrize("family", FAMILIES)
def test_every_encoder_family_fine_tunes_shrinks_and_times(family, tokenizer):
    from wmlib.finetune import encoder_layers, feed_forward_width

    model = SentenceClassifier(tiny_family_encoder(family, tokenizer.vocab_size), num_labels=2)
    history = train_classifier(model, tokenizer, toy_sentiment(32), batch_size=16, lr=1e-3)
    assert history.steps == 2 and all(np.isfinite(history.losses))
    texts = ["a fine film", "no", "the plot is thin but the actors are wonderful"]
    enc = tokenize(tokenizer, texts)
    with torch.no_grad():
        full = model(**enc)
        # padding does not change a sentence's logits in any family
        assert torch.allclose(full[1], model(**tokenize(tokenizer, texts[1:2]))[0], atol=1e-5)
        assert torch.allclose(keep_layers(model, [0, 1, 2])(**enc), full, atol=1e-5)
        same = prune_feed_forward(model, 64, tokenizer, texts)
        assert torch.allclose(same(**enc), full, atol=1e-5), "keeping every unit changes nothing"
        small = prune_feed_forward(keep_layers(model, [0, 2]), 16, tokenizer, texts)
        assert small(**enc).shape == (3, 2)
    assert len(encoder_layers(small)) == 2 and small.encoder.config.num_hidden_layers == 2
    assert feed_forward_width(small) == 16 and feed_forward_width(model) == 64
    assert count_parameters(small) < count_parameters(model)
    freeze_word_embeddings(small)
    assert not small.encoder.get_input_embeddings().weight.requires_grad
    train_classifier(small, tokenizer, toy_sentiment(16), batch_size=16, lr=1e-3)
    assert latency_ms(small, tokenizer, texts, batch_size=1, repeats=2, warmup=1) > 0


def test_other_encoders_are_refused_with_the_supported_families(tokenizer):
    import transformers

    from wmlib.finetune import UnsupportedEncoder

    cfg = transformers.GPT2Config(vocab_size=tokenizer.vocab_size, n_embd=32, n_layer=1, n_head=2, n_positions=64)
    with pytest.raises(UnsupportedEncoder, match="BERT-style, DistilBERT and ModernBERT"):
        SentenceClassifier(transformers.GPT2Model(cfg), 2)
    decoder = transformers.BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, intermediate_size=64, is_decoder=True)
    with pytest.raises(UnsupportedEncoder, match="decoder"):
        SentenceClassifier(transformers.BertModel(decoder), 2)


def test_frozen_features_are_cached_unit_vectors(tmp_path, monkeypatch, tokenizer):
    from wmlib.finetune import frozen_features

    monkeypatch.setenv("WMLIB_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "tiny-bert"  # a local model folder, as MODEL may name one
    tiny_family_encoder("bert", tokenizer.vocab_size).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    texts = ["a fine film", "dull", "the plot is thin but the actors are wonderful"]
    x = frozen_features(str(folder), texts, max_len=16)
    assert x.shape == (3, 32) and torch.allclose(x.norm(dim=1), torch.ones(3), atol=1e-2)
    assert len(list((tmp_path / "cache" / "features").glob("*.pt"))) == 1
    assert torch.equal(frozen_features(str(folder), texts, max_len=16), x), "the second call reads the cache"
    assert not torch.equal(frozen_features(str(folder), texts[:2], max_len=16), x[:1]), "other texts, other entry"
    with pytest.raises(ValueError, match="non-empty list"):
        frozen_features(str(folder), "one text")
    with pytest.raises(ValueError, match="cache must be"):
        frozen_features(str(folder), texts, cache="maybe")


def test_linear_probe_chooses_C_on_held_out_training_examples():
    from wmlib.finetune import linear_probe

    g = torch.Generator().manual_seed(0)
    y = torch.randint(2, (400,), generator=g)
    x = torch.randn(400, 8, generator=g) + 1.5 * y[:, None].float()  # separable on average
    clf, info = linear_probe(x, y.tolist(), Cs=(0.001, 1.0), seed=0)
    assert info["C"] in (0.001, 1.0) and set(info["holdout_accuracy"]) == {0.001, 1.0} and info["holdout_n"] == 40
    assert info["holdout_accuracy"][info["C"]] == max(info["holdout_accuracy"].values())
    assert clf.score(x.numpy(), y.numpy()) > 0.9
    with pytest.raises(ValueError, match="one label per row"):
        linear_probe(x, y.tolist()[:10])
    with pytest.raises(ValueError, match="holdout"):
        linear_probe(x, y.tolist(), holdout=1.0)
    with pytest.raises(ValueError, match="single class"):
        linear_probe(x[:20], [0] * 20)
