import random

from sftlens.data.ops import drop_traces, shuffle_steps, swap_traces
from sftlens.tasks.shop import PARAPHRASE, ShopConfig, ShopWorld, corrupt_step


def test_verifier_true_and_false_steps_of_each_kind(world_splits):
    w, _ = world_splits
    item = w.items[0]
    price = w.facts[item]["price"]
    weight = w.facts[item]["weight"]
    steps = [f"a {item} costs {price}", f"a {item} weighs {weight + 1}", "3 * 4 = 12", "3 * 4 = 13",
             "12 + 5 = 17", "12 + 5 = 18", "the shop is open"]
    checks = w.verify(steps)
    assert [c.kind for c in checks] == ["knowledge"] * 2 + ["arithmetic"] * 4 + ["other"]
    assert [c.valid for c in checks] == [True, False, True, False, True, False, False]
    assert "is" in checks[1].reason and str(weight) in checks[1].reason
    assert w.verify(["a unicorn costs 3"])[0].valid is False


def test_verifier_feeds(world_splits):
    w, sp = world_splits
    ex = sp.test[0]
    checks = w.verify(ex.steps, ex.answer)
    assert all(c.valid for c in checks)
    # every arithmetic step of a canonical solution feeds a later step or is the answer
    assert all(c.feeds for c in checks if c.kind == "arithmetic")
    dangling = w.verify(["2 * 3 = 6", "4 + 4 = 8"], answer="8")
    assert dangling[0].feeds is False and dangling[1].feeds is True


def test_canonical_solutions_are_valid_and_answers_match(world_splits):
    w, sp = world_splits
    for ex in sp.train + sp.test + [e for v in sp.variants.values() for e in v]:
        assert all(c.valid for c in w.verify(ex.steps, ex.answer)), ex
        last = ex.steps[-1].split("= ")[-1]
        assert last == ex.answer


def test_variants(world_splits):
    w, sp = world_splits
    c = w.config
    n_train_items = {len(e.meta["items"]) for e in sp.train}
    assert max(n_train_items) < min(len(e.meta["items"]) for e in sp.variants["long"])
    by_id = {e.id: e for e in sp.test}
    for e in sp.variants["n_minus_1"]:
        src = by_id[e.meta["source"]]
        assert len(e.meta["items"]) == len(src.meta["items"]) - 1
        assert {tuple(x) for x in e.meta["items"]} < {tuple(x) for x in src.meta["items"]}
    assert all(w._has_heldout_pair([i for i, _ in e.meta["items"]]) for e in sp.variants["unseen_combo"])
    assert not any(w._has_heldout_pair([i for i, _ in e.meta["items"]]) for e in sp.train + sp.pretrain_problems)
    lo, hi = c.unseen_qty_range
    assert all(lo <= q <= hi for e in sp.variants["unseen_range"] for _, q in e.meta["items"])
    assert all(c.qty_range[0] <= q <= c.qty_range[1] for e in sp.train for _, q in e.meta["items"])
    qs = [e.question for e in sp.train + sp.test + sp.pretrain_problems]
    assert len(qs) == len(set(qs))  # splits are disjoint by question


def test_world_is_seeded():
    a, b, c = ShopWorld(ShopConfig(seed=1)), ShopWorld(ShopConfig(seed=1)), ShopWorld(ShopConfig(seed=2))
    assert a.facts == b.facts and a.facts != c.facts


def test_fact_probes_cover_every_fact(world_splits):
    w, sp = world_splits
    assert len(sp.facts) == 2 * len(w.items)
    for e in sp.facts:
        assert e.answer == str(w.facts[e.meta["item"]][e.meta["attr"]])


def test_paraphrase_and_corruption(world_splits):
    w, sp = world_splits
    item = w.items[1]
    para = w.fact_sentence(item, "price", paraphrase=True)
    assert PARAPHRASE["costs"] in para and w.verify([para])[0].valid
    rng = random.Random(0)
    for step in sp.test[0].steps:
        bad = corrupt_step(w, step, rng)
        assert bad != step and w.verify([bad])[0].valid is False


def test_swap_operator(world_splits):
    _, sp = world_splits
    out = swap_traces(sp.train, seed=3)
    assert sorted(map(tuple, (e.steps for e in out))) == sorted(map(tuple, (e.steps for e in sp.train)))
    assert [e.answer for e in out] == [e.answer for e in sp.train]
    assert all(a.steps != b.steps for a, b in zip(out, sp.train))
    assert all(e.meta["ops"][-1]["op"] == "swap_traces" for e in out)
    assert swap_traces(sp.train, seed=3) == out  # seeded
    assert sp.train[0].meta.get("ops") is None  # inputs untouched
    assert all(e.steps == [] for e in drop_traces(sp.train[:5]))
    sh = shuffle_steps(sp.train[:5], seed=0)
    assert all(sorted(a.steps) == sorted(b.steps) and a.steps != b.steps for a, b in zip(sh, sp.train[:5]))


def test_no_variant_set_has_the_pretraining_item_counts(world_splits):
    """C8 measures what SFT changed: no variant set may be the base's pretraining distribution."""
    w, sp = world_splits
    lo, hi = w.config.pretrain_items
    pretraining = set(range(lo, hi + 1))
    assert {len(e.meta["items"]) for e in sp.pretrain_problems} <= pretraining
    for name, exs in sp.variants.items():
        assert exs, name
        assert not {len(e.meta["items"]) for e in exs} & pretraining, name


def test_n_minus_1_comes_from_three_item_test_problems(world_splits):
    w, sp = world_splits
    by_id = {e.id: e for e in sp.test}
    nm1 = sp.variants["n_minus_1"]
    assert len(nm1) == min(20, sum(len(e.meta["items"]) == 3 for e in sp.test)) > 0
    test_questions = {e.question for e in sp.test}
    lo, hi = w.config.items_per_problem
    for v in nm1:
        src = by_id[v.meta["source"]]
        assert len(src.meta["items"]) == 3 and lo <= len(v.meta["items"]) <= hi
        kept = [x for x in src.meta["items"] if x[0] != v.meta["removed"]]
        assert len(kept) == 2 and v.meta["items"] == kept  # the source minus one item, order kept
        assert (v.task, v.meta["person"]) == (src.task, src.meta["person"])
        assert v.question not in test_questions
    assert len({v.question for v in nm1}) == len(nm1)


def test_pretraining_problems_repeat_only_when_their_distribution_runs_out():
    from sftlens.tasks.shop import make_splits

    w = ShopWorld(ShopConfig(seed=0, n_items=5))
    pool = w.n_questions(w.config.pretrain_items)
    assert pool == 5 * 5 * 8 * 2  # items * quantities * people * tasks
    sp = make_splits(w, pool + 50, 20, 10, 3, seed=0)
    pre = sp.pretrain_problems
    assert len(pre) == pool + 50 and len({e.id for e in pre}) == len(pre)
    assert len({e.question for e in pre}) == pool  # every distinct one-item problem, then repeats
    first = {e.id: e for e in pre[:pool]}
    for e in pre[pool:]:
        assert first[e.meta["repeat_of"]].question == e.question
    others = {e.question for e in sp.train + sp.test + [e for v in sp.variants.values() for e in v]}
    assert not others & {e.question for e in pre}
    assert make_splits(w, pool + 50, 20, 10, 3, seed=0).pretrain_problems == pre  # seeded
    assert all("repeat_of" not in e.meta for e in make_splits(w, pool, 20, 10, 3, seed=0).pretrain_problems)


def test_variant_distribution_problems(world_splits):
    """C8's negative control trains on the variant distributions, never on the variant problems."""
    w, sp = world_splits
    c = w.config
    exclude = {e.question for e in sp.test + [e for v in sp.variants.values() for e in v]}
    exs = w.variant_distribution_problems(42, seed=5, exclude=exclude)
    assert len(exs) == 42 and len({e.question for e in exs}) == 42 and len({e.id for e in exs}) == 42
    assert not {e.question for e in exs} & exclude
    by_kind: dict[str, list] = {}
    for e in exs:
        by_kind.setdefault(e.meta["variant_distribution"], []).append(e)
    assert {k: len(v) for k, v in by_kind.items()} == {"long": 11, "n_minus_1": 11, "unseen_combo": 10,
                                                       "unseen_range": 10}
    items = lambda e: [i for i, _ in e.meta["items"]]  # noqa: E731
    qtys = lambda e: [q for _, q in e.meta["items"]]  # noqa: E731
    in_train_qty = lambda e: all(c.qty_range[0] <= q <= c.qty_range[1] for q in qtys(e))  # noqa: E731
    assert all(len(items(e)) == c.long_items and in_train_qty(e) for e in by_kind["long"])
    assert all(len(items(e)) == 2 and in_train_qty(e) and not w._has_heldout_pair(items(e))
               for e in by_kind["n_minus_1"])
    assert all(w._has_heldout_pair(items(e)) and in_train_qty(e) for e in by_kind["unseen_combo"])
    lo, hi = c.unseen_qty_range
    assert all(lo <= q <= hi for e in by_kind["unseen_range"] for q in qtys(e))
    for e in exs:  # worked solutions the verifier accepts, as SFT data
        assert all(x.valid for x in w.verify(e.steps, e.answer)) and e.steps[-1].endswith(f"= {e.answer}")
    assert w.variant_distribution_problems(42, seed=5, exclude=exclude) == exs  # seeded
