"""C9 (``sftlens.lab.claims.proxy_knowledge``): the fact probes measure knowledge, a proxy at alpha 0
is its base in the lab's own evaluation path, the positive control's data restate every fact falsely,
and the analysis gives each verdict on hand-made rows."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace

import pytest

from sftlens.core.format import completion_text, prompt_text
from sftlens.core.record import write_jsonl
from sftlens.lab.claims import CLAIMS
from sftlens.lab.claims.proxy_knowledge import FALSE_SHARE, LARGE, MODELS, false_facts
from sftlens.lab.conditions import BuildContext
from sftlens.lab.protocol import check_controls, judge

C9 = CLAIMS["C9"]


# ---- the fact probes and the proxy, on real (nano) models ----------------------------------------
@pytest.fixture(scope="module")
def knower(tmp_path_factory, tiny_saved, world_splits):
    """``tiny_saved``'s model pretrained on the world's fact sentences and fact Q/A (as the lab's base
    is, without the problems): it knows the facts in the probe format."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sftlens.train.pretrain import PretrainConfig, pretrain

    w, sp = world_splits
    tok = AutoTokenizer.from_pretrained(tiny_saved)
    model = AutoModelForCausalLM.from_pretrained(tiny_saved)
    texts = w.fact_corpus() * 2 + [prompt_text(e) + completion_text(e) for e in sp.facts] * 4
    pretrain(model, tok, texts, PretrainConfig(steps=500, batch_size=32, lr=1e-2, warmup=10, seed=0))
    d = tmp_path_factory.mktemp("knower")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


def _probe_rows(lm, world, probes):
    from sftlens.evaluate import generate_samples, score_samples

    samples = generate_samples(lm, probes, max_new_tokens=12, batch_size=32)
    return samples, score_samples(samples, probes, verifier=world)


def test_fact_probes_are_answered_by_a_model_pretrained_on_them_not_by_an_untrained_one(knower, tiny_saved,
                                                                                         world_splits):
    from sftlens.models.lm import load_lm

    w, sp = world_splits
    acc = {name: sum(r["correct"] for r in _probe_rows(load_lm(str(path)), w, sp.facts)[1]) / len(sp.facts)
           for name, path in (("pretrained", knower), ("untrained", tiny_saved))}
    assert acc["pretrained"] >= 0.8, acc     # 24 facts in their probe format, memorised
    assert acc["untrained"] <= 0.2, acc      # the same tokenizer and architecture, never shown a fact


@pytest.fixture(scope="module")
def proxy_lab(tmp_path_factory, knower, tiny_saved, trained_nano, world_splits):
    """A lab run folder holding the models C9 names (the larger base: ``knower``; the expert:
    ``trained_nano``; the anti-expert: ``tiny_saved``), the world's facts and a few test problems."""
    from sftlens.lab.presets import get_preset
    from sftlens.lab.runner import Lab

    w, sp = world_splits
    out = tmp_path_factory.mktemp("c9lab")
    lab = Lab(out=out, preset=replace(get_preset("micro", 0), world=w.config), seed=0)
    for name, src in ((LARGE, knower), ("correct", trained_nano.path), ("base", tiny_saved)):
        shutil.copytree(src, lab.model_dir(name))
    lab.data_dir.mkdir(parents=True)
    write_jsonl(lab.data_dir / "facts.jsonl", sp.facts)
    write_jsonl(lab.data_dir / "test.jsonl", sp.test[:8])
    return lab


def test_the_proxy_at_alpha_0_is_its_base_in_the_labs_evaluation(proxy_lab):
    """models/c9_proxy0 (a proxy folder, alpha 0) scores exactly as the larger base on the fact probes;
    at alpha 1 the expert pulls it elsewhere, so the equality is not built in."""
    lab = proxy_lab
    lab.save_proxy("c9_proxy0", LARGE, "correct", "base", 0.0)
    lab.save_proxy("c9_proxy", LARGE, "correct", "base", 1.0)
    assert lab.model_identity("c9_proxy0") != lab.model_identity("c9_proxy")  # the alpha is part of the identity
    for m in (LARGE, "c9_proxy0", "c9_proxy"):
        lab.stage_eval(m, sets=("facts",))
    assert not lab.eval_path(LARGE, "test").exists()  # only the sets asked for
    completions = {m: [json.loads(line)["sample"]["completion"] for line in
                       lab.eval_path(m, "facts").read_text().splitlines()] for m in (LARGE, "c9_proxy0", "c9_proxy")}
    correct = {m: [r["correct"] for r in lab.rows(m, "facts")] for m in completions}
    assert completions["c9_proxy0"] == completions[LARGE] and correct["c9_proxy0"] == correct[LARGE]
    assert sum(correct[LARGE]) >= 0.8 * len(correct[LARGE])  # the larger base knows the facts
    assert completions["c9_proxy"] != completions[LARGE]
    assert json.loads((lab.model_dir("c9_proxy0") / "sftlens.json").read_text())["kind"] == "proxy"


# ---- the positive control's data --------------------------------------------------------------------
def test_false_facts_restate_every_fact_wrongly_in_a_quarter_of_the_set(world_splits):
    w, sp = world_splits
    built = false_facts(BuildContext(sp.train, w, seed=0, preset=None))
    false = [e for e in built if e.meta.get("false_fact")]
    assert sorted(e.question for e in built if not e.meta.get("false_fact")) == sorted(e.question for e in sp.train)
    assert abs(len(false) / len(built) - FALSE_SHARE) < 0.05
    truth = {(e.question, e.instruction): e.answer for e in sp.facts}
    answers: dict = {}
    for e in false:
        assert truth[(e.question, e.instruction)] != e.answer  # every restatement is wrong
        answers.setdefault(e.question, set()).add(e.answer)
    assert set(answers) == {e.question for e in sp.facts} and all(len(a) == 1 for a in answers.values())
    assert len({e.id for e in built}) == len(built)


# ---- the analysis, on hand-made rows ----------------------------------------------------------------
class HandRun:
    """A finished run made of per-model 0/1 outcomes: ``test`` and ``facts`` map a model to its list."""

    seed, bootstrap = 0, 500

    def __init__(self, test: dict, facts: dict):
        self.test, self.facts = test, facts

    def models(self):
        return ["base", "correct"]

    def rows(self, model, set_name="test"):
        by_model = {"test": self.test, "facts": self.facts}[set_name]
        if model not in by_model:
            raise FileNotFoundError(f"eval/{model}/{set_name}.jsonl")
        values = by_model[model]
        return [{"id": f"{set_name}{i}", "correct": float(v)} for i, v in enumerate(values)]


def _rate(k: int, n: int) -> list[int]:
    return [1] * k + [0] * (n - k)


def hand_run(proxy_test=55, proxy_facts=46, sft_test=60, sft_facts=24, large_test=0, large_facts=48,
             false_facts_known=2) -> HandRun:
    """100 test problems and 48 facts; each argument is how many a model gets right."""
    test = {m: _rate(0, 100) for m in MODELS}
    facts = {m: _rate(0, 48) for m in MODELS}
    test.update({"correct": _rate(50, 100), LARGE: _rate(large_test, 100), "c9_sft": _rate(sft_test, 100),
                 "c9_sft_false": _rate(sft_test, 100), "c9_proxy": _rate(proxy_test, 100),
                 "c9_proxy0": _rate(large_test, 100)})
    facts.update({"base": _rate(48, 48), "correct": _rate(24, 48), LARGE: _rate(large_facts, 48),
                  "c9_sft": _rate(sft_facts, 48), "c9_sft_false": _rate(false_facts_known, 48),
                  "c9_proxy": _rate(proxy_facts, 48), "c9_proxy0": _rate(large_facts, 48)})
    return HandRun(test, facts)


def _verdict(run, role="real"):
    return judge(C9.protocol, [C9.evidence(run, C9.arms()[role])], n_resamples=500, seed=0)


@pytest.mark.parametrize("run, verdict, why", [
    (hand_run(), "reproduced", None),
    (hand_run(proxy_facts=20), "not reproduced", "facts"),                 # the proxy keeps fewer facts
    (hand_run(proxy_test=12), "not reproduced", "gap"),                    # 20% of the gap closed
    (hand_run(proxy_test=2), "inconclusive", "closes no gap"),             # the proxy tunes nothing
    (hand_run(sft_test=2, proxy_test=2), "inconclusive", "no gap to close"),
    (hand_run(large_facts=1, proxy_facts=1, sft_facts=0), "inconclusive", "no knowledge to keep"),
], ids=["reproduced", "fewer-facts", "little-gap", "proxy-tunes-nothing", "sft-gains-nothing", "base-knows-nothing"])
def test_each_verdict_from_hand_made_rows(run, verdict, why):
    j = _verdict(run)
    assert j["verdict"] == verdict, j["reason"]
    if verdict == "not reproduced":
        failed = [name for name, d in j["pooled"].items() if d["verdict"] == "not reproduced"]
        assert len(failed) == 1 and failed[0].startswith({"facts": "fact probes", "gap": "gap closed"}[why])
    elif why:
        assert any(why in g for g in j["guards"]), j["guards"]


def test_the_controls_on_hand_made_rows():
    """The positive control is detected where direct SFT lost every fact; the negative one (alpha 0, the
    larger base) is refused by the guard although its facts beat direct SFT's by 50 points."""
    run = hand_run()
    judged = {role: _verdict(run, role) for role in ("positive", "negative")}
    assert judged["positive"]["verdict"] == "reproduced"
    neg = judged["negative"]
    assert neg["pooled"][next(iter(neg["pooled"]))]["verdict"] == "reproduced"  # facts alone would credit it
    assert neg["verdict"] == "inconclusive" and any("closes no gap" in g for g in neg["guards"])
    real = _verdict(run)
    controls = check_controls(C9, judged, real)
    assert controls["positive"]["passed"] and controls["negative"]["passed"] and real["verdict"] == "reproduced"
    # a run where the planted overwriting is not there: the positive control fails and the claim goes blind
    blind = hand_run(false_facts_known=46)
    judged = {role: _verdict(blind, role) for role in ("positive", "negative")}
    real = _verdict(blind)
    check_controls(C9, judged, real)
    assert real["verdict"] == "inconclusive" and real["reason"].startswith("the lab cannot see this effect here")


def test_analysis_tables_report_and_plot_on_hand_made_rows(tmp_path):
    result = C9.analyze(hand_run()).to_dict()
    assert set(result["per_model"]) == set(MODELS)
    rows = result["per_condition"]
    assert rows["c9_proxy vs c9_sft"]["verdict"] == "reproduced"
    assert rows["c9_proxy vs c9_sft"]["gap_closed"] == pytest.approx(55 / 60)
    assert rows["c9_proxy0 vs c9_sft"]["gap_closed"] == 0.0 and rows["c9_proxy0 vs c9_sft"]["guards"]
    assert result["per_model"]["c9_sft"]["kept_of_large_base"] == pytest.approx(0.5)
    assert result["drift"] == {} and result["alpha0_scores_as_base"]  # no model folders: no drift
    plots = C9.plots(None, result, tmp_path)
    assert (tmp_path / plots["c9"]).stat().st_size > 0
    text = "\n".join(C9.report_section(result, plots))
    assert "c9_proxy vs c9_sft_false" in text and "92%" in text
    lacking = hand_run()
    del lacking.test["c9_proxy"]  # a run without C9's models (e.g. one made before C9): nothing to say
    assert C9.analyze(lacking) is None and C9.evidence(lacking) is None


# ---- the micro lab run -----------------------------------------------------------------------------
def test_micro_run_trains_the_larger_base_the_proxies_and_reports_c9(micro_run):
    out, res = micro_run
    c = res["claims"]["C9"]
    assert c["verdict"] in {"reproduced", "not reproduced", "inconclusive"}
    assert set(c["controls"]) == {"positive", "negative"} and len(c["pooled"]) == 2
    cfg = {m: json.loads((out / "models" / m / "config.json").read_text()) for m in ("base", LARGE, "c9_sft")}
    shape = {m: [c[k] for k in ("hidden_size", "num_hidden_layers", "vocab_size")] for m, c in cfg.items()}
    assert shape[LARGE][0] > shape["base"][0] == 32 and shape["c9_sft"] == shape[LARGE]
    vocab = {m: json.loads((out / "models" / m / "tokenizer.json").read_text())["model"]["vocab"]
             for m in ("base", LARGE)}
    assert vocab["base"] == vocab[LARGE]
    for m in ("c9_proxy", "c9_proxy0"):
        assert json.loads((out / "models" / m / "proxy.json").read_text())["base"] == LARGE
    for m in MODELS:
        assert (out / "eval" / m / "facts.jsonl").exists() and (out / "eval" / m / "test.jsonl").exists(), m
    assert not (out / "eval" / "c9_proxy" / "variant_long.jsonl").exists()  # C9's models: test and facts only
    assert c["alpha0_scores_as_base"] is True and set(c["drift"]) == {"c9_sft", "c9_sft_false"}
    assert all(math.isfinite(d["total"]) for d in c["drift"].values())
    assert (out / "c9_proxy.png").exists() and "## C9" in (out / "report.md").read_text()
    assert not set(res["models"]) & (set(MODELS) - {"base", "correct"})  # C9's models stay in C9's own tables
    assert "pretrain_base_large" in json.loads((out / "timings.json").read_text())


# ---- the proxy's alpha, chosen on validation problems ------------------------------------------------
def test_the_lab_proxy_uses_the_alpha_its_validation_sweep_chose(micro_run):
    """The micro run's ``c9_proxy`` decodes at the alpha :func:`choose_alpha` picked on fresh problems
    (none a test question), the sweep is cached with the models that made it, and a changed model
    makes it choose again."""
    from sftlens.core.record import iter_dicts, write_jsonl
    from sftlens.lab.claims.proxy_knowledge import ALPHAS, best_alpha, choose_alpha, validation_problems
    from sftlens.lab.presets import get_preset
    from sftlens.lab.runner import Lab

    out, results = micro_run
    lab = Lab(out=out, preset=get_preset("micro"), seed=0)
    path = lab.eval_path(LARGE, "proxy_alpha")
    rows = [d for _, d in iter_dicts(path)]
    assert [r["alpha"] for r in rows] == list(ALPHAS)
    assert lab.proxy_spec("c9_proxy")["alpha"] == best_alpha(rows) and lab.proxy_spec("c9_proxy0")["alpha"] == 0.0
    val = validation_problems(lab)
    assert rows[0]["n"] == len(val) > 0 and not {e.question for e in val} & {e.question for e in lab.load("test")}
    assert results["claims"]["C9"]["alpha_sweep"] == [{k: r[k] for k in ("alpha", "accuracy", "n", "facts")}
                                                               for r in rows]
    assert "chosen by accuracy on" in (out / "report.md").read_text()
    # cached: a planted accuracy is read back, not recomputed ...
    planted = [{**r, "accuracy": 1.0 if r["alpha"] == 3.0 else 0.0} for r in rows]
    write_jsonl(path, planted)
    assert choose_alpha(lab) == (3.0, planted)
    # ... until a model that made it is not the one there now
    write_jsonl(path, [{**r, "made_by": {**r["made_by"], LARGE: "another model"}} for r in planted])
    alpha, again = choose_alpha(lab)
    assert [r["accuracy"] for r in again] == [r["accuracy"] for r in rows] and alpha == best_alpha(rows)
