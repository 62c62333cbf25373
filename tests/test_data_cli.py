"""``sftlens data``: corrupt / convert / profile through the real CLI entry point, in-process."""

from __future__ import annotations

import json

import pytest

from sftlens.cli import main
from sftlens.data.difficulty import BandThresholds, band, pass_rates
from sftlens.core.record import Example, read_jsonl, write_jsonl
from sftlens.tasks.shop import ShopConfig, ShopWorld, make_splits


@pytest.fixture(scope="module")
def shop():
    w = ShopWorld(ShopConfig(seed=0))
    return w, make_splits(w, 20, 40, 8, 4, seed=0)


@pytest.fixture
def train_file(tmp_path, shop):
    p = tmp_path / "train.jsonl"
    write_jsonl(p, shop[1].train)
    return p


def _bad_files(tmp_path, shop):
    good = [json.dumps(e.to_dict()) for e in shop[1].train[:4]]
    broken = good[:2] + ['{"id": "x", "question": "q", '] + good[2:]
    missing = good[:3] + [json.dumps({"id": "y", "task": "t", "steps": ["s"], "answer": "1"})]
    empty = good[:1] + [json.dumps({"id": "z", "task": "t", "question": "q", "steps": [], "answer": "1"})]
    out = {}
    for name, lines, lineno, field in (("broken", broken, 3, "not valid JSON"), ("missing", missing, 4, "field 'question'"),
                                       ("empty", empty, 2, "field 'steps': empty")):
        p = tmp_path / f"{name}.jsonl"
        p.write_text("\n".join(lines) + "\n")
        out[name] = (p, lineno, field)
    return out


@pytest.mark.parametrize("case", ["broken", "missing", "empty"])
def test_corrupt_rejects_bad_input_and_writes_nothing(tmp_path, shop, capsys, case):
    path, lineno, field = _bad_files(tmp_path, shop)[case]
    out = tmp_path / "out.jsonl"
    rc = main(["data", "corrupt", "--traces", "swap", str(path), str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"{path}:{lineno}: {field}" in err and "Traceback" not in err
    assert not out.exists() and list(tmp_path.glob(".out.jsonl*")) == []


def test_corrupt_single_options_compose_and_are_seeded(tmp_path, train_file, shop, capsys):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    args = ["--traces", "swap", "--instructions", "empty", "--label-noise", "0.25", "--seed", "3"]
    assert main(["data", "corrupt", *args, str(train_file), str(a)]) == 0
    assert main(["data", "corrupt", *args, str(train_file), str(b)]) == 0
    assert a.read_text() == b.read_text()
    src, out = shop[1].train, read_jsonl(a)
    assert [e.id for e in out] == [e.id for e in src]
    assert all(e.instruction == "" for e in out)
    assert [o["op"] for o in out[0].meta["ops"]][:2] == ["instructions_empty", "swap_traces"]
    assert sorted(map(tuple, (e.steps for e in out))) == sorted(map(tuple, (e.steps for e in src)))
    assert sum(x.answer != y.answer for x, y in zip(src, out)) == round(0.25 * len(src))
    assert "changed" in capsys.readouterr().err


def test_corrupt_with_world_is_task_aware(tmp_path, train_file, shop):
    from sftlens.core.record import atomic_write_json

    w = shop[0]
    world = tmp_path / "world.json"
    atomic_write_json(world, w.to_dict())
    out = tmp_path / "c.jsonl"
    assert main(["data", "corrupt", "--traces", "corrupt", "--corrupt-rate", "0.3", "--corrupter", "shop",
                 "--world", str(world), str(train_file), str(out)]) == 0
    for e in read_jsonl(out):
        bad = [i for i, c in enumerate(w.verify(e.steps, e.answer)) if not c.valid]
        assert bad == e.meta["ops"][-1]["steps"] and bad


def test_corrupt_recipe_and_usage_errors(tmp_path, train_file, capsys):
    r = tmp_path / "r.yaml"
    r.write_text("seed: 1\nsteps:\n  - op: filler_traces\n  - op: label_noise\n    p: 0.1\n")
    out = tmp_path / "r.jsonl"
    assert main(["data", "corrupt", "--recipe", str(r), str(train_file), str(out)]) == 0
    assert all(set(" ".join(e.steps).split()) == {"..."} for e in read_jsonl(out))
    assert main(["data", "corrupt", "--recipe", str(r), "--traces", "swap", str(train_file), str(out)]) == 2
    assert "either --recipe or single operator" in capsys.readouterr().err
    r.write_text("steps:\n  - op: nope\n")
    assert main(["data", "corrupt", "--recipe", str(r), str(train_file), str(tmp_path / "n.jsonl")]) == 2
    assert f"{r}:2: field 'steps[0].op': unknown operator 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "n.jsonl").exists()


def test_convert_gsm8k_and_mapped_jsonl(tmp_path, capsys):
    g = tmp_path / "g.jsonl"
    g.write_text(json.dumps({"question": "2+3?", "answer": "2+3 = <<2+3=5>>5\n#### 5"}) + "\n")
    out = tmp_path / "o.jsonl"
    assert main(["data", "convert", str(g), str(out)]) == 0
    e = read_jsonl(out)[0]
    assert (e.task, e.steps, e.answer) == ("gsm8k", ["2+3 = <<2+3=5>>5"], "5")
    m = tmp_path / "m.jsonl"
    m.write_text(json.dumps({"q": "x", "a": 1}) + "\n" + json.dumps({"q": "y"}) + "\n")
    assert main(["data", "convert", "--question-field", "q", "--answer-field", "a", str(m), str(out)]) == 2
    assert f"{m}:2: field 'a': missing" in capsys.readouterr().err


class _FakeLM:
    """Answers right on the first of every k replicated prompts only (tests replication order)."""

    name = "fake"

    def __init__(self, k, answers):
        self.k, self.answers, self.calls = k, answers, []

    def generate(self, prompts, **kw):
        self.calls.append(kw)
        return [f"A: {self.answers[i // self.k] if i % self.k == 0 else 'wrong'}" for i in range(len(prompts))]


def test_pass_rates_replicate_prompts_k_times():
    exs = [Example(id=str(i), task="t", question=f"q{i}", answer=str(i)) for i in range(3)]
    lm = _FakeLM(4, ["0", "9", "2"])
    assert pass_rates(lm, exs, k=4, temperature=0.7, seed=5) == [0.25, 0.0, 0.25]
    assert lm.calls[0]["temperature"] == 0.7 and lm.calls[0]["seed"] == 5
    assert band(0.25, BandThresholds(easy=0.9, hard=0.25)) == "too_hard"


def test_profile_on_a_tiny_local_model(tmp_path, trained_nano, capsys):
    # a model that has memorised some problems: pass rates differ, so bands and --keep-band mean something
    exs = [e for pair in zip(trained_nano.seen[:4], trained_nano.unseen[:4]) for e in pair]  # seen, unseen, ...
    src = tmp_path / "in.jsonl"
    write_jsonl(src, exs)
    out = tmp_path / "p.jsonl"
    args = ["data", "profile", "--model", str(trained_nano.path), "--k", "4", "--temperature", "0.5",
            "--max-new-tokens", "72", "--device", "cpu", "--quiet", str(src), str(out)]
    assert main(args) == 0
    rows = read_jsonl(out)
    assert [e.id for e in rows] == [e.id for e in exs]
    rates = [e.meta["pass_rate"] for e in rows]
    for e in rows:
        assert e.meta["pass_rate"] in (0.0, 0.25, 0.5, 0.75, 1.0) and e.meta["profile"]["k"] == 4
        assert e.meta["band"] == band(e.meta["pass_rate"])
    # teeth: every memorised problem passes more often than any unseen one, and more than one band occurs
    assert min(rates[0::2]) > max(rates[1::2]) and len({e.meta["band"] for e in rows}) > 1
    first = out.read_text()
    assert main(args) == 0 and out.read_text() == first  # same seed, same numbers
    keep = tmp_path / "k.jsonl"
    assert main(args[:-2] + ["--keep-band", "too_hard", str(src), str(keep)]) == 0
    kept = [e.id for e in read_jsonl(keep)]
    assert kept == [e.id for e in rows if e.meta["band"] == "too_hard"] and 0 < len(kept) < len(rows)
    assert main(["data", "profile", "--model", str(tmp_path / "nope"), str(src), str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
