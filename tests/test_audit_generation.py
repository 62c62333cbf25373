"""`sftlens audit` for instruct and reasoning models: chat templates and system messages, generations
cut at --max-new-tokens, <think> blocks, and several samples per example (pass@k, maj@k)."""

from __future__ import annotations

import json
import math
import re
import shutil
from collections import Counter

import pytest

from sftlens.cli import main
from sftlens.core.format import prompt_text
from sftlens.core.record import atomic_write_json, write_jsonl
from sftlens.models import lm as lm_mod

# a template with visible markers that writes its own BOS, as many instruct models' templates do
TEMPLATE = ("{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}{% endfor %}"
            "{% if add_generation_prompt %}[assistant] {% endif %}")
QUIET = ["--batch-size", "16", "--no-progress", "--no-faithfulness"]


@pytest.fixture()
def shop_data(tmp_path, world_splits, trained_nano):
    """A lab-style data folder: 4 memorised and 4 unseen shop problems next to their world file."""
    w, _ = world_splits
    data = tmp_path / "lab" / "data"
    atomic_write_json(data / "world.json", w.to_dict())
    write_jsonl(data / "test.jsonl", trained_nano.seen[:4] + trained_nano.unseen[:4])
    return data / "test.jsonl"


@pytest.fixture(scope="module")
def chat_models(tmp_path_factory, tiny_saved, trained_nano):
    """``tiny_saved`` (``base``) and ``trained_nano`` (``tuned``) with a chat template on their tokenizers."""
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    folders = {}
    for name, source in (("base", tiny_saved), ("tuned", trained_nano.path)):
        folders[name] = tmp_path_factory.mktemp(f"chat_{name}")
        shutil.copytree(source, folders[name], dirs_exist_ok=True)
        tok = AutoTokenizer.from_pretrained(source)
        tok.chat_template = TEMPLATE
        tok.save_pretrained(folders[name])
    return SimpleNamespace(**folders)


def _records(out, role=None):
    recs = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    return [r for r in recs if r["set"] == "main" and (role is None or r["role"] == role)]


def test_chat_template_auto_none_and_system(tmp_path, chat_models, tiny_saved, shop_data, monkeypatch, capsys):
    from transformers import LlamaForCausalLM

    seen_inputs = []
    original = LlamaForCausalLM.generate

    def spy(self, *args, **kwargs):
        ids, mask = kwargs["input_ids"], kwargs["attention_mask"]
        seen_inputs.extend(row[m.bool()].tolist() for row, m in zip(ids, mask))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(LlamaForCausalLM, "generate", spy)
    common = ["audit", "--base", str(chat_models.base), "--tuned", str(chat_models.tuned), "--data", str(shop_data),
              "--max-new-tokens", "4", *QUIET]
    bos = 1  # the tiny tokenizer's <s>, which it also adds by itself to plain text
    questions = {json.loads(x)["id"]: json.loads(x) for x in shop_data.read_text().splitlines()}

    # auto: the template's markers around the question, the system message first, exactly one BOS
    assert main([*common, "--out", str(tmp_path / "auto"), "--system", "Be brief."]) == 0
    recs = _records(tmp_path / "auto")
    assert len(recs) == 16 and seen_inputs
    for r in recs:
        assert r["prompt"].startswith("<s>[system] Be brief.[user] ") and r["prompt"].endswith("[assistant] ")
    assert all(row.count(bos) == 1 and row[0] == bos for row in seen_inputs)
    fmt = json.loads((tmp_path / "auto" / "results.json").read_text())["inputs"]
    assert fmt["chat_template"] == "auto" and fmt["system"] == "Be brief."
    assert fmt["prompt_format"]["tuned"]["chat_template"] is True and fmt["prompt_format"]["tuned"]["template_sha256"]
    assert "[user]" in fmt["prompt_format"]["base"]["example_prompt"]
    assert "chat template" in (tmp_path / "auto" / "report.html").read_text()

    # none: the plain prompt of today, no marker, and the tokenizer's own single BOS
    seen_inputs.clear()
    assert main([*common, "--out", str(tmp_path / "none"), "--chat-template", "none"]) == 0
    recs = _records(tmp_path / "none")
    assert len(recs) == 16 and all("[user]" not in r["prompt"] and "<s>" not in r["prompt"] for r in recs)
    from sftlens.core.record import Example

    assert all(r["prompt"] == prompt_text(Example.from_dict(questions[r["id"]])) for r in recs)
    assert all(row.count(bos) == 1 and row[0] == bos for row in seen_inputs)
    fmt = json.loads((tmp_path / "none" / "results.json").read_text())["inputs"]["prompt_format"]
    assert fmt["base"]["chat_template"] is False and fmt["base"]["example_prompt"].startswith("compute")

    # --system cannot work without a template: refused before any output is written
    capsys.readouterr()
    assert main([*common, "--out", str(tmp_path / "x1"), "--chat-template", "none", "--system", "hi"]) == 2
    assert "--system" in capsys.readouterr().err and not (tmp_path / "x1").exists()
    plain = ["audit", "--base", str(tiny_saved), "--tuned", str(chat_models.tuned), "--data", str(shop_data),
             "--out", str(tmp_path / "x2"), "--system", "hi", *QUIET]
    assert main(plain) == 2
    err = capsys.readouterr().err
    assert "--system needs a chat template" in err and str(tiny_saved) in err and not (tmp_path / "x2").exists()


def test_generate_says_which_rows_stopped_at_the_limit(trained_nano):
    """In one batch, rows that end early (EOS, or a finished answer line) are padded while the others
    run on to the limit: only the latter count as cut."""
    from sftlens.models.lm import load_lm

    lm = load_lm(str(trained_nano.path), device="cpu")
    prompts = [prompt_text(e) for e in trained_nano.seen[:8] + trained_nano.unseen[:8]]
    full = lm.generate(prompts, max_new_tokens=96, details=True)
    assert not any(g.hit_limit for g in full)
    n = [len(lm.tokenizer(g.text, add_special_tokens=False)["input_ids"]) for g in full]  # tokens each row needs
    limit = next(x for x in range(sorted(n)[len(n) // 2], 96) if all(x not in (k, k + 1) for k in n))
    cut = lm.generate(prompts, max_new_tokens=limit, details=True)
    assert [g.hit_limit for g in cut] == [k > limit for k in n]
    assert [g.text for g, k in zip(cut, n) if k < limit] == [g.text for g, k in zip(full, n) if k < limit]
    # the check bites: some rows finished their answer line early (padded, not EOS) while others were cut
    assert any(k > limit for k in n) and any(g.text.endswith("\n") for g, k in zip(cut, n) if k < limit)
    assert lm.generate(prompts[:2], max_new_tokens=limit) == [g.text for g in cut[:2]]  # plain texts by default


def test_generations_cut_at_the_limit_and_thinking(tmp_path, tiny_saved, trained_nano, shop_data, monkeypatch,
                                                   capsys):
    original = lm_mod.LM.generate

    def thinking(self, prompts, *args, **kwargs):  # the tuned model often "thinks" first, at different lengths
        out = original(self, prompts, *args, **kwargs)
        if "trained" not in self.name:
            return out
        return [g._replace(text=f"<think>{'hmm ' * (i % 3)}</think>" + g.text) if i % 3 else g
                for i, g in enumerate(out)]

    monkeypatch.setattr(lm_mod.LM, "generate", thinking)
    base_argv = ["audit", "--base", str(tiny_saved), "--tuned", str(trained_nano.path), "--data", str(shop_data),
                 *QUIET]
    for limit, name in ((2, "short"), (72, "long")):
        capsys.readouterr()
        out = tmp_path / name
        assert main([*base_argv, "--out", str(out), "--max-new-tokens", str(limit)]) == 0
        err = capsys.readouterr().err
        r = json.loads((out / "results.json").read_text())
        html = (out / "report.html").read_text()
        for role in ("base", "tuned"):
            recs = _records(out, role)
            cut = sum(x["meta"]["hit_max_new_tokens"] for x in recs) / len(recs)  # recounted from the samples
            assert r["models"][role]["generation"]["hit_max_new_tokens"] == cut
            warned = any(f"of {role} (" in w for w in r["warnings"])
            assert warned == (cut > 0.05) and (f"generations of {role} (" in err) == warned
        tuned = _records(out, "tuned")
        blocks = [re.search(r"<think>(.*?)</think>", x["completion"], re.S) for x in tuned]
        think = [len(m.group(1).strip()) for m in blocks if m]
        assert 0 < len(think) < len(tuned)  # some samples think, others do not
        assert r["models"]["tuned"]["generation"]["think_chars_mean"] == sum(think) / len(think)
        assert r["models"]["tuned"]["generation"]["n_thinking"] == len(think)
        assert "think_chars_mean" not in r["models"]["base"]["generation"]
        assert "mean &lt;think&gt; length" in html
        if limit == 2:  # two tokens never finish an answer: every generation is cut, and the report says so
            assert r["models"]["tuned"]["generation"]["hit_max_new_tokens"] == 1.0
            assert r["models"]["base"]["generation"]["hit_max_new_tokens"] == 1.0
            assert html.count('<div class="banner warn">') == 2
            assert html.index('<div class="banner ') < html.index('<div class="banner warn">') < html.index("<table")
        else:  # the memorised problems end with their answer line, so at least those four are not cut
            answered = [x for x in tuned if re.search(r"\nA: \S+\n?$", x["completion"])]
            assert len(answered) >= 4 and not any(x["meta"]["hit_max_new_tokens"] for x in answered)
            assert r["models"]["tuned"]["generation"]["hit_max_new_tokens"] < 0.6
    # `sftlens report` re-renders the warning from results.json
    assert main(["report", str(tmp_path / "short")]) == 0
    assert "stopped at --max-new-tokens 2" in capsys.readouterr().err


def _pass_at_k(n, c, k):
    return 1.0 if n - c < k else 1.0 - math.comb(n - c, k) / math.comb(n, k)


def test_several_samples_pass_at_k_maj_at_k_and_resume(tmp_path, tiny_saved, trained_nano, shop_data, monkeypatch,
                                                       capsys):
    calls = {"prompts": 0}
    original = lm_mod.LM.generate

    def counting(self, prompts, *args, **kwargs):
        calls["prompts"] += len(prompts)
        return original(self, prompts, *args, **kwargs)

    monkeypatch.setattr(lm_mod.LM, "generate", counting)
    out = tmp_path / "sampled"
    argv = ["audit", "--base", str(tiny_saved), "--tuned", str(trained_nano.path), "--data", str(shop_data),
            "--out", str(out), "--max-new-tokens", "72", "--temperature", "1.0", "--samples", "4", *QUIET]
    assert main(argv) == 0
    r = json.loads((out / "results.json").read_text())
    assert r["run"]["generated_new"] == calls["prompts"] == 2 * 8 * 4
    # recount every number from samples.jsonl: pass@k by Chen et al.'s formula, maj@k by a majority vote
    per_role = {}
    for role in ("base", "tuned"):
        by_id: dict[str, list[dict]] = {}
        for x in _records(out, role):
            by_id.setdefault(x["id"], []).append(x)
        assert len(by_id) == 8 and all(sorted(x["meta"]["sample_index"] for x in v) == [0, 1, 2, 3]
                                       for v in by_id.values())
        assert len({x["key"] for v in by_id.values() for x in v}) == 32
        answers = {i: [x["answer"] for x in sorted(v, key=lambda x: x["meta"]["sample_index"])]
                   for i, v in by_id.items()}
        ref = {i: v[0]["reference"] for i, v in by_id.items()}
        right = {i: [a == ref[i] for a in answers[i]] for i in by_id}
        per_role[role] = {i: sum(v) / 4 for i, v in right.items()}
        sampling = r["models"][role]["sampling"]
        assert sampling["n_samples"] == 4 and sampling["k"] == [1, 2, 4]
        for k in (1, 2, 4):
            expected = sum(_pass_at_k(4, sum(v), k) for v in right.values()) / 8
            assert math.isclose(sampling["metrics"][f"pass@{k}"]["mean"], expected)
            votes = [Counter(a for a in answers[i][:k] if a is not None).most_common(1) for i in by_id]
            maj = sum(bool(v) and v[0][0] == ref[i] for v, i in zip(votes, by_id)) / 8
            assert math.isclose(sampling["metrics"][f"maj@{k}"]["mean"], maj)
        assert math.isclose(r["models"][role]["metrics"]["correct"]["mean"], sum(per_role[role].values()) / 8)
    tuned = [x["completion"] for x in _records(out, "tuned")]
    assert len(set(tuned)) > 8  # sampled: an example's four completions are not all the same
    assert r["models"]["tuned"]["sampling"]["metrics"]["pass@4"]["mean"] > 0  # a model that answers: checks bite
    # the paired comparison stays over examples, on each example's pass@1; McNemar needs binary outcomes
    c = r["comparisons"][0]
    binary = all(v in (0.0, 1.0) for role in per_role for v in per_role[role].values())
    assert c["n_pairs"] == 8 and ("strict" in c["mcnemar"]) == binary  # samples drawn per path: either can happen
    diff = sum(per_role["tuned"][i] - per_role["base"][i] for i in per_role["tuned"]) / 8
    assert math.isclose(c["diff"]["correct"]["mean"], diff)
    assert "pass@4" in (out / "report.html").read_text() and "maj@2" in (out / "report.md").read_text()

    # resume: nothing new; fewer samples reuse the first ones
    calls["prompts"] = 0
    assert main(argv) == 0 and calls["prompts"] == 0
    argv[argv.index("--samples") + 1] = "2"
    assert main(argv) == 0 and calls["prompts"] == 0
    r2 = json.loads((out / "results.json").read_text())
    assert r2["models"]["tuned"]["sampling"]["k"] == [1, 2]

    # greedy decoding cannot give several samples
    capsys.readouterr()
    bad = ["audit", "--base", str(tiny_saved), "--tuned", str(trained_nano.path), "--data", str(shop_data),
           "--out", str(tmp_path / "bad"), "--samples", "2", *QUIET]
    assert main(bad) == 2
    assert "--temperature" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    # saved generations have no sampling or prompt settings
    assert main(["audit", "--predictions", str(shop_data), "--samples", "2", "--out", str(tmp_path / "bad")]) == 2
    assert "--samples" in capsys.readouterr().err and not (tmp_path / "bad").exists()
