"""wmlib.probes: the tasks' generators, the oracle (1.0 everywhere) and the coin (chance), scoring by
characters, intervals and effective lengths, KV policies, the report and the ``wmlib probe`` CLI.

Most tests use fake models (wmlib.probes.oracle) or a tiny random Llama with a character-level
tokenizer, so they run in seconds and need no download. One test checks the packaged SmolLM2.
"""

import json
import random
import re
from collections import Counter

import pytest
import torch

from wmlib.cli import main
from wmlib.probes import (
    GROUPS, TASKS, ContextTooLong, Item, ProbeLM, effective_length, estimate, evaluate, get_tasks, parse_policy,
    span_from_curve,
)
from wmlib.probes.memory import score_under_policies
from wmlib.probes.n_back import make_block
from wmlib.probes.oracle import CHAT_TEMPLATE, OracleLM, RandomLM, char_tokenizer, parse_conversation
from wmlib.probes.tasks import fit_to_length, item_prompt_ids, join_parts, score_item
from wmlib.stats import Estimate

LENGTHS = [1200, 2000]  # characters = tokens for the character-level tokenizer


def tiny_model(vocab_size, max_positions=4096, seed=0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_positions,
                         pad_token_id=0, eos_token_id=1, bos_token_id=1)
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def tok():
    return char_tokenizer()


@pytest.fixture(scope="module")
def tiny(tok):
    return ProbeLM(tiny_model(len(tok)), tok, name="tiny-llama", device="cpu")


@pytest.fixture(scope="module")
def tiny_plain():
    tok = char_tokenizer(None)
    return ProbeLM(tiny_model(len(tok)), tok, name="tiny-plain", device="cpu")


def settings_for(task, limit=2):
    extra = {"limit": limit}
    if task.length_axis == "length":
        extra["lengths"] = LENGTHS
    return task.settings(quick=True, **extra)


# ---------------------------------------------------------------------------------- the LM wrapper
def test_chat_template_is_used_when_present(tiny, tiny_plain):
    assert tiny.use_chat_template and not tiny_plain.use_chat_template
    assert tiny.render("hello", "Answer:") == "[user] hello\n[assistant] Answer:"
    assert tiny_plain.render("hello", "Answer:") == "hello\nAnswer:"
    with pytest.raises(ValueError, match="no chat template"):
        ProbeLM(tiny_plain.model, tiny_plain.tokenizer, use_chat_template=True)
    assert not ProbeLM(tiny.model, tiny.tokenizer, use_chat_template="off").use_chat_template


def test_greedy_match_is_what_generate_writes(tiny):
    """Teacher-forced greedy match must agree with model.generate(do_sample=False)."""
    prompts = [tiny.prompt_ids(u, "A:") for u in ("abc", "a much longer prompt here", "xyz 123")]
    answers = []
    for p in prompts:
        ids = torch.tensor([p])
        out = tiny.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=4,
                                  do_sample=False, pad_token_id=0)
        answers.append(out[0, len(p):].tolist())
    scored = tiny.score_answers(prompts, answers)
    assert all(s.correct and s.token_accuracy == 1.0 for s in scored)
    wrong = [a[:-1] + [(a[-1] + 1) % len(tiny.tokenizer)] for a in answers]  # last token changed
    assert not any(s.correct for s in tiny.score_answers(prompts, wrong))


def test_left_padding_does_not_change_scores(tiny):
    prompts = [tiny.prompt_ids("x" * n, "A:") for n in (3, 40, 17)]
    answers = [tiny.encode(" 42"), tiny.encode(" 7"), tiny.encode(" 123")]
    for p, a, b in zip(prompts, answers, tiny.score_answers(prompts, answers)):
        alone = tiny.score_answers([p], [a])[0]
        assert alone.correct == b.correct and alone.logprob == pytest.approx(b.logprob, abs=1e-4)


def test_context_limit_errors(tok):
    lm = ProbeLM(tiny_model(len(tok), max_positions=256), tok, name="short-model")
    with pytest.raises(ContextTooLong, match=r"niah_single \(length=400, depth=0.5\).*256"):
        evaluate(lm, get_tasks("niah_single"), lengths=[400], limit=1, overrides={"niah_single": {"depths": [0.5]}})
    with pytest.raises(ContextTooLong, match="exceeds the model's own limit of 256"):
        ProbeLM(lm.model, tok, max_context=1000)


# ---------------------------------------------------------------------------------- the registry
def test_missing_data_stops_the_run_before_any_scoring(tok, monkeypatch):
    import wmlib.probes.needle as needle

    def missing():
        raise RuntimeError("no sst2 here")

    monkeypatch.setattr(needle, "_sst2_pool", missing)
    lm = ProbeLM(RandomLM(tok, seed=0), tok, name="coin", device="cpu")
    scored = []
    monkeypatch.setattr(lm, "score_answers", lambda *a, **k: scored.append(1))
    with pytest.raises(RuntimeError, match="no sst2"):
        evaluate(lm, get_tasks("niah_single,niah_multikey"), quick=True, lengths=[LENGTHS[0]], limit=1)
    assert not scored  # niah_single (synthetic) was not scored first


def test_registry_lists_at_least_eight_tasks():
    assert len(TASKS) >= 8
    assert {"niah_single", "niah_multikey", "niah_multivalue", "niah_multiquery", "lost_in_the_middle", "vt", "cwe",
            "nback", "digit_span_forward", "digit_span_backward"} <= set(TASKS)
    assert [t.name for t in get_tasks("needle,vt")] == GROUPS["needle"] + ["vt"]
    assert len(get_tasks("all")) == len(TASKS) and len(get_tasks("vt,vt,ruler")) == len(GROUPS["ruler"])
    with pytest.raises(ValueError, match="unknown task 'stroop'"):
        get_tasks("vt,stroop")
    with pytest.raises(ValueError, match="no setting"):
        TASKS["vt"].settings(quick=True, lenghts=[3])
    with pytest.raises(ValueError, match="limit"):
        TASKS["vt"].settings(quick=True, limit=0)


# ---------------------------------------------------------------------------------- oracle and coin
@pytest.mark.parametrize("name", list(TASKS))
def test_oracle_scores_one_on_every_task(name, tok):
    task = TASKS[name]
    lm = ProbeLM(OracleLM(task, tok), tok, name="oracle", device="cpu")
    report = evaluate(lm, [task], quick=True, lengths=LENGTHS, limit=2)
    r = report.task(name)
    assert r["exact"] == 1.0, r
    if task.kind == "greedy":
        assert r["partial"] == 1.0 and r["chars"] == 1.0
        assert all(e["by_point"] for e in [r["effective_" + task.length_axis]])
    else:
        for s in r["by_n"].values():
            assert s["hit_rate"]["value"] == 1.0 and s["false_alarm_rate"]["value"] == 0.0
            assert s["dprime"]["value"] > 3


def test_random_model_scores_at_chance(tok):
    lm = ProbeLM(RandomLM(tok, seed=1), tok, name="coin", device="cpu")
    greedy = [t for t in TASKS.values() if t.kind == "greedy"]
    report = evaluate(lm, greedy, quick=True, lengths=[LENGTHS[0]], limit=2)
    for t in greedy:
        r = report.task(t.name)
        assert r["exact"] == 0.0 and r["exact_ci95"][0] == 0.0  # chance is ~0 for these answers
    nback = evaluate(lm, get_tasks("nback"), limit=12, overrides={"nback": {"ns": [1, 2]}}).task("nback")
    for s in nback["by_n"].values():
        d = s["dprime"]
        assert d["low"] < 0 < d["high"], d  # d' = 0 (chance) inside the interval
        assert s["accuracy"]["low"] < 0.5 < s["accuracy"]["high"]
        assert abs(s["hit_rate"]["value"] - s["false_alarm_rate"]["value"]) < 0.15


def test_parse_conversation():
    text = "[user] hi\nthere\n[assistant] OK\n[user] 4\n[assistant] The dig"
    msgs, reply = parse_conversation(text)
    assert msgs == [{"role": "user", "content": "hi\nthere"}, {"role": "assistant", "content": "OK"},
                    {"role": "user", "content": "4"}] and reply == "The dig"
    assert parse_conversation("[user] hi\n")[1] is None


# ---------------------------------------------------------------------------------- generators
def _items(name, tiny, limit=2, **extra):
    task = TASKS[name]
    settings = settings_for(task, limit)
    settings.update(extra)
    return task, task.items(tiny, settings, seed=0)


NEEDLE_RE = re.compile(r"One of the special magic numbers for ([a-z]+-[a-z]+) is: (\d{7})\.")


@pytest.mark.parametrize("name", ["niah_single", "niah_single_natural", "niah_multikey", "niah_multivalue",
                                  "niah_multiquery"])
def test_needle_items_have_the_properties_they_claim(name, tiny):
    task, items = _items(name, tiny, depths=[0.0, 0.5, 1.0])
    for it in items:
        user = it.user
        needles = NEEDLE_RE.findall(user)
        assert len(needles) == task.keys * task.values  # every needle present, once
        assert len(set(needles)) == len(needles) and len({v for _, v in needles}) == len(needles)
        assert it.meta["user_tokens"] <= it.cell["length"] and it.meta["user_tokens"] > 0.8 * it.cell["length"]
        asked = [v for v in it.part_texts]
        assert len(asked) == task.values * task.queries and all(user.count(v) == 1 for v in asked)
        assert task.solve(it.messages) == it.prefix + it.answer  # the answer follows from the prompt, uniquely
        # depth as requested: the first asked-for needle sits at that fraction of the document
        assert abs(it.meta["needle_char_depth"] - it.cell["depth"]) < 0.2
        doc = user.split("afterwards.\n", 1)[1]
        if it.cell["depth"] == 0.0:
            assert doc.startswith("One of the special magic numbers")
    for length in LENGTHS:  # the same document at every depth: the needle moves monotonically
        for doc_id in (0, 1):
            depths = [it.meta["needle_char_depth"] for it in items if (it.cell["length"], it.doc_id) == (length, doc_id)]
            assert depths == sorted(depths) and len(depths) == 3
    if name == "niah_single":
        assert not re.search(r"\d|magic", " ".join(__import__("wmlib.probes.needle", fromlist=["x"])
                                                   .synthetic_sentences(random.Random(0), 200)))


def test_depths_share_one_document(tiny):
    """Depths are compared on the same material: the haystack is the same at every depth."""
    _, items = _items("niah_single", tiny, limit=1, depths=[0.0, 1.0])
    strip = [re.sub(r"\s+", " ", NEEDLE_RE.sub("", it.user)) for it in items if it.cell["length"] == LENGTHS[0]]
    assert strip[0] == strip[1] and items[0].answer == items[1].answer


def test_items_are_deterministic_by_seed(tiny):
    task = TASKS["vt"]
    s = settings_for(task)
    a, b, c = task.items(tiny, s, seed=3), task.items(tiny, s, seed=3), task.items(tiny, s, seed=4)
    assert [x.user for x in a] == [x.user for x in b] and [x.user for x in a] != [x.user for x in c]


def test_lost_in_the_middle_moves_one_pair(tiny):
    task, items = _items("lost_in_the_middle", tiny, positions=[0.0, 0.5, 1.0], id_length=8)
    for it in items:
        obj = json.loads(re.search(r"JSON data:\n(\{.*?\n\})", it.user, re.S).group(1))
        key = re.search(r'Key: "(\w+)"', it.user).group(1)
        keys = list(obj)
        assert keys.index(key) == round(it.cell["position"] * (len(keys) - 1)) == it.meta["index"]
        assert list(obj.values()).count(obj[key]) == 1 and it.answer == obj[key] + '"'
        assert it.part_texts == [obj[key]]  # the closing quote is not part of the answer
    same = [it for it in items if it.cell["length"] == LENGTHS[0] and it.doc_id == 0]
    assert len({it.answer for it in same}) == 1  # the same pair at every position


def test_variable_tracking_items(tiny):
    task, items = _items("vt", tiny)
    for it in items:
        value = re.findall(r"assigned the value (\d+) in the text above", it.user)[-1]
        body = it.user.split("they are:")[-1]
        chain = re.findall(r"VAR ([A-Z]{5}) = ", body)
        assert chain == it.part_texts and len(chain) == 5 and len(set(chain)) == 5
        assert body.count(f"= {value}") == 1 and task.solve(it.messages) == it.prefix + it.answer


def test_common_words_items(tiny):
    task, items = _items("cwe", tiny)
    for it in items:
        listing = it.user.rsplit("Memorize the ones that appear most often.\n", 1)[1].split("\nQuestion")[0]
        counts = Counter(re.findall(r"\d+\. ([a-z]+)", listing))
        common = [w for w, c in counts.items() if c == 6]
        assert len(common) == 5 and all(c in (1, 6) for c in counts.values())
        assert set(it.part_texts) == set(common)
        firsts = sorted(common, key=lambda w: listing.index(f". {w} ") if f". {w} " in listing else listing.index(f". {w}"))
        assert it.part_texts == firsts


def test_nback_blocks():
    for n in (0, 1, 2, 3):
        rng = random.Random(n)
        for _ in range(20):
            b = make_block(n, rng)
            assert len(b.letters) == 30 and sum(b.targets) == 10
            for t, (x, target) in enumerate(zip(b.letters, b.targets)):
                match = (x == b.cue) if n == 0 else (t >= n and x == b.letters[t - n])
                assert match == target  # no accidental matches
    with pytest.raises(ValueError, match="targets"):
        make_block(3, random.Random(0), trials=10, targets=8)


def test_digit_span_items(tiny):
    task, items = _items("digit_span_backward", tiny, digits=[4])
    for it in items:
        shown = [m["content"].splitlines()[-1] for m in it.messages if m["role"] == "user"][:-1]
        assert it.part_texts == shown[::-1] and all(a != b for a, b in zip(shown, shown[1:]))
        assert "Now repeat" in it.messages[-1]["content"] and shown[0] not in it.messages[-1]["content"]
    assert span_from_curve([3, 4, 5, 6], [1.0, 1.0, 0.0, 0.0]) == 4.5
    assert span_from_curve([3, 5], [1.0, 1.0]) == 5.0


def test_fit_to_length():
    build = lambda k: "x" * (10 + 3 * k)  # noqa: E731
    k, text = fit_to_length(len, build, 100, "toy")
    assert k == 30 and len(text) == 100
    with pytest.raises(ValueError, match="too short"):
        fit_to_length(len, build, 5, "toy")


# ---------------------------------------------------------------------------------- scoring by characters
def test_characters_right_count_answer_characters_not_tokens(tiny):
    item = Item("t", 0, {}, [{"role": "user", "content": "q"}], "is \"", 'ab12"', [(0, 4)])
    ids = tiny.encode(item.answer)  # one token per character here
    only_quote = [ids[0] + 1, ids[1] + 1, ids[2] + 1, ids[3] + 1, ids[4]]
    m = score_item(tiny, item, ids, only_quote, -1.0)
    assert m["exact"] is False and m["partial"] == 0.0 and m["chars"] == 0.0  # the quote does not count
    half = [ids[0], ids[1], ids[2] + 1, ids[3], ids[4]]
    m = score_item(tiny, item, ids, half, -1.0)
    assert m["chars"] == 0.75 and m["partial"] == 0.0 and m["greedy"] == "ab" + tiny.tokenizer.decode([ids[2] + 1])
    text, parts = join_parts(["123", "45"])
    assert text == " 123, 45." and [text[a:b] for a, b in parts] == ["123", "45"]


def test_characters_follow_offsets_of_multi_character_tokens():
    from wmlib.probes.tasks import answer_char_spans

    class Fake:  # a tokenizer whose tokens span several characters, without offsets
        name = "fake"

        class tokenizer:  # noqa: N801
            pieces = {7: " 12", 8: "34", 9: '5"'}

            @staticmethod
            def __call__(text, **kw):
                raise NotImplementedError

            @classmethod
            def decode(cls, ids):
                return "".join(cls.pieces[i] for i in ids)

    spans = answer_char_spans(Fake, ' 12345"', [7, 8, 9])
    assert spans == [(0, 3), (3, 5), (5, 7)]


# ---------------------------------------------------------------------------------- intervals, effective length
def test_estimate_and_effective_length():
    e = estimate([1, 1, 0, 1])
    assert e.method == "Wilson" and e.value == 0.75
    assert estimate([0.5, 1.0, 0.25]).method == "bootstrap"
    mk = lambda v, lo, hi: Estimate(v, lo, hi, 20, "Wilson")  # noqa: E731
    curve = {256: mk(0.95, 0.87, 0.99), 512: mk(0.9, 0.7, 0.97), 1024: mk(0.5, 0.3, 0.7), 2048: mk(0.9, 0.86, 0.95)}
    eff = effective_length(curve, 0.856)
    assert eff["by_point"] == 512 and eff["by_interval"] == 256  # stops at the first failing length
    assert effective_length({256: mk(0.5, 0.3, 0.7)})["by_point"] is None
    with pytest.raises(ValueError, match="threshold"):
        effective_length(curve, 1.5)


# ---------------------------------------------------------------------------------- KV policies
def test_parse_policy():
    assert parse_policy("full").kind == "full"
    w = parse_policy("window:256")
    assert (w.kind, w.budget) == ("window", 256)
    s = parse_policy("sinks:4+252")
    assert (s.kind, s.budget, s.sinks) == ("sinks", 256, 4)
    h = parse_policy("h2o:128+64")
    assert (h.budget, h.recent) == (192, 64) and parse_policy("h2o:256").recent is None
    for bad, msg in (("lru:5", "unknown KV policy"), ("window:1", "at least 2"), ("sinks:4", "sinks:S\\+R"),
                     ("window:3+4", "one number")):
        with pytest.raises(ValueError, match=msg):
            parse_policy(bad)


def test_policies_match_the_full_cache_when_nothing_is_evicted(tiny):
    prompts = [tiny.prompt_ids("x" * n + " tell me", "A:") for n in (30, 50)]
    answers = [tiny.encode(" 123"), tiny.encode(" 45")]
    specs = [parse_policy(p) for p in ("full", "window:200", "window:24", "sinks:2+22", "h2o:12+12")]
    out = score_under_policies(tiny, prompts, answers, specs)
    full = tiny.score_answers(prompts, answers)
    for i, r in enumerate(full):
        assert out["full"][i][0] == list(r.predicted)
        assert out["window:200"][i][0] == list(r.predicted)  # the budget holds everything: nothing evicted
        assert out["window:200"][i][1] == pytest.approx(r.logprob, abs=1e-3)
    # stream_under_budget with nothing to evict computes the same as the batched forward pass
    from wmlib.kv_cache import CachedDecoder, stream_under_budget

    ids = torch.tensor([prompts[0] + answers[0]])
    res = stream_under_budget(CachedDecoder(tiny.model), ids, None)
    span = slice(len(prompts[0]) - 1, len(prompts[0]) + len(answers[0]) - 1)
    assert res.predictions[0, span].tolist() == list(full[0].predicted)
    for label in ("window:24", "sinks:2+22", "h2o:12+12"):
        assert all(len(pred) == len(a) for (pred, _), a in zip(out[label], answers))
    # H2O rows of different lengths side by side (padded at the end) = each alone
    one = score_under_policies(tiny, prompts, answers, [parse_policy("h2o:12+12")], rows=1)["h2o:12+12"]
    for (p1, l1), (p2, l2) in zip(one, out["h2o:12+12"]):
        assert p1 == p2 and l1 == pytest.approx(l2, abs=1e-4)


@pytest.mark.parametrize("label", ["window:40", "sinks:4+36", "window:7", "sinks:1+9"])
def test_window_and_sinks_masks_equal_streaming_under_eviction(label, tiny):
    """One forward pass with the policy's mask computes what reading token by token with eviction does."""
    from wmlib.kv_cache import CachedDecoder, stream_under_budget
    from wmlib.probes.memory import _masked_predictions

    ids = torch.randint(3, 90, (150,), generator=torch.Generator().manual_seed(0)).tolist()
    spec = parse_policy(label)
    res = stream_under_budget(CachedDecoder(tiny.model), torch.tensor([ids]), spec.build())
    logp = _masked_predictions(tiny, ids, [spec], len(ids))[0, :-1]
    assert torch.equal(logp.argmax(-1), res.predictions[0])
    nll = -logp.gather(-1, torch.tensor(ids[1:])[:, None])[:, 0]
    assert torch.allclose(nll, res.nll[0], atol=1e-4)


def test_evaluate_under_policies_gives_a_memory_table(tiny):
    report = evaluate(tiny, get_tasks("niah_single,nback"), lengths=[600], limit=1,
                      policies=["full", "window:300", "sinks:4+296", "h2o:300"],
                      overrides={"niah_single": {"depths": [0.0, 1.0]}, "nback": {"ns": [1], "limit": 1}})
    res = report.results
    assert set(res["memory_systems"]["niah_single"]) == {"full", "window:300", "sinks:4+296", "h2o:300"}
    assert "nback" in res["results"] and "nback@window:300" not in res["results"]
    assert "effective length" in report.table()


# ---------------------------------------------------------------------------------- the report
def test_report_json_jsonl_table_and_plot(tiny, tmp_path):
    report = evaluate(tiny, get_tasks("niah_single,lost_in_the_middle,nback,digit_span_forward"), lengths=[600],
                      limit=1, seed=2, model_args={"dtype": "float32"},
                      overrides={"nback": {"ns": [0, 1], "limit": 2}, "digit_span_forward": {"digits": [3, 4]}})
    res = report.results
    assert {"results", "configs", "versions", "n-samples", "config", "environment", "date", "prompts",
            "total_evaluation_time_seconds"} <= set(res)
    cfg = res["config"]
    assert cfg["dtype"] == "torch.float32" and cfg["device"] == "cpu" and cfg["chat_template"] == "on"
    assert cfg["seed"] == 2 and res["environment"]["torch"] == torch.__version__
    r = res["results"]["niah_single"]
    assert r["exact_ci95"][0] <= r["exact"] <= r["exact_ci95"][1]
    assert {"value", "low", "high", "n", "method"} <= set(r["cells"][0]["exact"])
    assert {"hit_rate", "false_alarm_rate", "dprime", "accuracy"} <= set(res["results"]["nback"]["by_n"]["1"])
    written = report.write(tmp_path / "out", log_samples=True)
    assert written[0].name.startswith("results_") and written[0].parent.name == "tiny-llama"
    assert json.loads(written[0].read_text())["config"]["model"] == "tiny-llama"
    rows = [json.loads(line) for p in written[1:] for line in p.read_text().splitlines()]
    assert {r["task"] for r in rows} == {"niah_single", "lost_in_the_middle", "nback", "digit_span_forward"}
    needle_rows = [r for r in rows if r["task"] == "niah_single"]
    assert all({"doc_id", "cell", "prompt", "target", "resps", "exact", "partial", "chars"} <= set(r) for r in needle_rows)
    assert report.write(tmp_path / "x.json")[0] == tmp_path / "x.json"
    table = report.table()
    assert "niah_single" in table and "d-prime" in table
    png = tmp_path / "plot.png"
    report.plot(png)
    assert png.stat().st_size > 10_000


# ---------------------------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """The tiny model saved as a local checkpoint, loadable by path like a hub model."""
    path = tmp_path_factory.mktemp("tiny-llama")
    tok = char_tokenizer(CHAT_TEMPLATE)
    tiny_model(len(tok)).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_cli_ls_lists_tasks(capsys):
    assert main(["probe", "ls"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in TASKS) and "groups:" in out


def test_cli_run_writes_results_samples_and_plot(tiny_dir, tmp_path, capsys):
    code = main(["probe", "run", "--tasks", "niah_single,vt,nback", "--model", str(tiny_dir), "--device", "cpu",
                 "--model-args", "dtype=float32,batch_tokens=4096", "--chat-template", "on", "--lengths", "600,1200",
                 "--limit", "1", "--seed", "3", "--kv-policy", "full,window:600", "--set", '{"nback": {"ns": [1]}}',
                 "--output-path", str(tmp_path), "--log-samples", "--plot"])
    assert code == 0
    out = capsys.readouterr().out
    assert "niah_single" in out and "effective length" in out and "wrote" in out
    folder = next(tmp_path.iterdir())
    results = json.loads(next(folder.glob("results_*.json")).read_text())
    assert results["config"]["model_args"] == {"dtype": "float32", "batch_tokens": 4096}
    assert results["config"]["kv_policies"] == ["full", "window:600"]
    assert results["results"]["vt"]["skipped_cells"] == [{"length": 600}]  # too short for its instructions and results["config"]["seed"] == 3
    assert len(list(folder.glob("samples_*.jsonl"))) == 3 and len(list(folder.glob("plot_*.png"))) == 1


BAD = [
    ["probe", "run", "--limit", "0"],
    ["probe", "run", "--seed", "-1"],
    ["probe", "run", "--lengths", "16"],
    ["probe", "run", "--lengths", "256,x"],
    ["probe", "run", "--kv-policy", "lru:5"],
    ["probe", "run", "--kv-policy", "window:256,window:256"],
    ["probe", "run", "--model-args", "dtype=int8"],
    ["probe", "run", "--model-args", "colour=blue"],
    ["probe", "run", "--chat-template", "maybe"],
    ["probe", "run", "--threshold", "1.5"],
    ["probe", "run", "--set", "[1]"],
    ["probe", "run", "--tasks", "stroop", "--model", "none"],
    ["probe", "run", "--log-samples"],
    ["probe", "stroop"],
]


@pytest.mark.parametrize("family", ["llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "gpt_neox"])
def test_cli_run_on_a_local_folder_of_every_family(family, tiny_model_dir, tmp_path, capsys):
    """`wmlib probe run --model PATH` on a checkpoint folder of each supported family (wmlib.testing):
    a needle item, its grader and an eviction policy, with or without BOS and with grouped digits."""
    assert main(["probe", "run", "--tasks", "niah_single", "--model", str(tiny_model_dir(family)), "--device", "cpu",
                 "--lengths", "256", "--limit", "1", "--kv-policy", "full,window:128",
                 "--output-path", str(tmp_path)]) == 0
    results = json.loads(next(next(tmp_path.iterdir()).glob("results_*.json")).read_text())
    cells = results["results"]
    assert set(cells) == {"niah_single", "niah_single@window:128"}  # the full cache, then the policy
    assert all(c["n"] == 3 and 0 <= c["exact"] <= 1 for c in cells.values())  # three needle depths, scored
    assert results["config"]["chat_template"] in ("on", "off")  # the policy is recorded
    assert "niah_single" in capsys.readouterr().out


@pytest.mark.parametrize("argv", BAD, ids=[" ".join(a[1:]) for a in BAD])
def test_cli_bad_flags_exit_2_with_one_line(argv, wmlib_cli):
    code, lines = wmlib_cli(argv)
    assert code == 2, (code, lines)
    assert len(lines) == 1 and "error:" in lines[0], lines


def test_cli_output_path_problems_are_reported(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["probe", "run", "--output-path", str(blocker)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert main(["probe", "run", "--tasks", "vt", "--output-path", str(blocker / "sub")]) == 2
    assert "cannot write to --output-path" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- the real model
@pytest.mark.slow
def test_smollm_finds_a_single_needle():
    """SmolLM2-135M-Instruct finds one needle in a short synthetic haystack (the chapter's finding)."""
    lm = ProbeLM.load("smollm2-135m", device="cpu")
    report = evaluate(lm, get_tasks("niah_single"), lengths=[256], limit=2,
                      overrides={"niah_single": {"depths": [0.0, 1.0]}})
    assert report.task("niah_single")["exact"] == 1.0
    assert item_prompt_ids  # imported for the chapter's use


# ---------------------------------------------------------------------------------- recorded runs
def test_recorded_runs_match_the_code():
    """Chapter 14's record of the whole benchmark: its task settings must be the code's current defaults."""
    from wmlib import results

    rec = results.load("ch14_smollm2")
    assert set(rec["configs"]) == set(TASKS)
    for name, cfg in rec["configs"].items():
        assert {k: v for k, v in cfg.items() if k not in ("axes", "group")} == TASKS[name].settings(quick=False), name
        assert rec["versions"][name] == TASKS[name].version
    assert rec["config"]["model"] == "smollm2-135m" and rec["config"]["quick"] is False
    assert rec["config"]["lengths"] is None and rec["config"]["limit"] is None and rec["config"]["seed"] == 0


def test_the_memory_systems_record_matches_the_code():
    """Chapter 14's memory-systems record (H2O streams token by token: the slowest run of the book),
    shipped with wmlib: made with today's task settings and the policies the chapter names."""
    from wmlib import results

    mem = results.load("ch14_memory")
    assert mem["config"]["kv_policies"] == ["full", "window:256", "sinks:4+252", "h2o:256", "window:512",
                                            "sinks:4+508", "h2o:512"]
    assert mem["config"]["lengths"] is None and mem["config"]["limit"] is None and mem["config"]["seed"] == 0
    assert set(mem["configs"]) == {"niah_single"}
    for name, cfg in mem["configs"].items():
        assert {k: v for k, v in cfg.items() if k not in ("axes", "group")} == TASKS[name].settings(quick=False), name
        assert mem["versions"][name] == TASKS[name].version


def test_document_curve_counts_documents_not_items():
    """Needles at several depths of one document are one observation's worth, not several."""
    from wmlib.probes.evaluate import document_curve, estimate

    cells = [{"cell": {"length": 256, "depth": d}, "items": {"doc_id": [0, 1, 2, 3], "partial": [1.0] * 4}}
             for d in (0.0, 0.5, 1.0)]
    curve = document_curve({"cells": cells})
    assert list(curve) == [256] and curve[256].n == 12 and curve[256].extra["clusters"] == 4
    assert curve[256].low < estimate([1.0] * 12).low  # 4 documents know less than 12 independent items
