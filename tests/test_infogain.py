import math

from transformers import AutoModelForCausalLM, AutoTokenizer

from sftlens.metrics.infogain import ChainScore, prefix_scores, prefix_scores_naive


def test_shared_prefix_equals_one_pass_per_prefix(tiny_saved, world_splits):
    tok = AutoTokenizer.from_pretrained(tiny_saved)
    model = AutoModelForCausalLM.from_pretrained(tiny_saved)
    _, sp = world_splits
    items = [(e, e.steps, e.answer) for e in sp.test[:12]]
    items.append((sp.test[0], [], sp.test[0].answer))               # no steps
    items.append((sp.test[1], sp.test[2].steps, sp.test[1].answer))  # someone else's chain
    fast = prefix_scores(model, tok, items, batch_size=5)
    slow = prefix_scores_naive(model, tok, items)
    for f, s in zip(fast, slow):
        assert len(f.logp) == len(s.logp)
        assert max(abs(a - b) for a, b in zip(f.logp, s.logp)) < 1e-5
        assert max(abs(a - b) / b for a, b in zip(f.ppl, s.ppl)) < 1e-5


def test_chain_score_quantities():
    s = ChainScore(logp=[-3.0, -2.0, -2.5, -0.5], ppl=[4.0, 3.0, 2.0, 1.0])
    assert s.gains == [1.0, -0.5, 2.0]
    assert s.mean_gain == 2.5 / 3 and s.min_gain == -0.5 and s.total == 2.5
    assert s.ppl_infogain == 3.0 / 4
    assert math.isnan(ChainScore(logp=[-1.0]).mean_gain)
