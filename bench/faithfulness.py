"""Early answering: prefix reuse (one pass over each chain, 4D mask + KV cache) vs the naive N+1
independent greedy generations per chain, on a tiny model with shop chains of 5-8 steps.

Both ways must give the same answers (checked here too). Prints one line::

    early answering: naive 3.21 s, prefix reuse 0.40 s, speedup 8.0x (40 chains, 5-8 steps)

"naive" batches the independent generations like an evaluation harness would (``--batch-size``
contexts per ``generate`` call); a second line gives the one-generation-at-a-time time.
Runs in well under 60 s on two CPU cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    """Build a tiny shop model, then time both ways of early answering on the same chains."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chains", type=int, default=40, help="number of chains (test problems) to time")
    ap.add_argument("--size", default="tiny", help="tiny model size: nano, tiny, small, base")
    ap.add_argument("--batch-size", type=int, default=32, help="contexts (naive) or chains (reuse) per batch")
    ap.add_argument("--max-answer-tokens", type=int, default=8, help="tokens decoded per forced answer")
    ap.add_argument("--device", default="cpu", help="torch device for the model (cpu, cuda, ...)")
    ap.add_argument("--dtype", default="float32", help="model dtype (float32, bfloat16)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (1 is fastest for tiny models on a shared CPU)")
    args = ap.parse_args(argv)

    import torch

    from sftlens.core.format import completion_text, prompt_text
    from sftlens.metrics import faithfulness as F
    from sftlens.metrics.reasoning import make_sample
    from sftlens.models.lm import lm_from_model
    from sftlens.models.tiny import build_tokenizer, make_model
    from sftlens.tasks.shop import ShopConfig, ShopWorld, make_splits
    from sftlens.train.pretrain import PretrainConfig, pretrain

    torch.set_num_threads(args.threads)
    world = ShopWorld(ShopConfig(seed=0))
    sp = make_splits(world, 200, 200, args.chains, 2, seed=0)
    tok = build_tokenizer([prompt_text(e) + completion_text(e) for e in sp.train + sp.test + sp.pretrain_problems])
    model = make_model(tok, args.size, seed=0)
    pretrain(model, tok, [prompt_text(e) + completion_text(e) for e in sp.train], PretrainConfig(steps=150, batch_size=32))
    model.to(device=args.device, dtype=getattr(torch, args.dtype))
    lm = lm_from_model(model, tok, f"{args.size}-shop")
    samples = [make_sample(e, lm.name, prompt_text(e), completion_text(e)) for e in sp.test]
    lengths = [len(s.steps) for s in samples]
    mat = args.max_answer_tokens

    F.early_answers(lm, samples[:2], mat, args.batch_size)  # warm-up
    F.early_answers_naive(lm, samples[:2], mat, batch_size=args.batch_size)
    t0 = time.perf_counter()
    fast = F.early_answers(lm, samples, mat, args.batch_size)
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = F.early_answers_naive(lm, samples, mat, batch_size=args.batch_size)
    t_slow = time.perf_counter() - t0
    t0 = time.perf_counter()
    one = F.early_answers_naive(lm, samples, mat, batch_size=1)
    t_one = time.perf_counter() - t0
    if fast != slow or fast != one:
        bad = sum(a != b for a, b in zip(fast, one))
        print(f"early answering: MISMATCH between prefix reuse and naive on {bad} chains", file=sys.stderr)
        return 1
    where = "" if args.device == "cpu" and args.dtype == "float32" else f", {args.device} {args.dtype}"
    print(f"early answering: naive {t_slow:.2f} s, prefix reuse {t_fast:.2f} s, speedup {t_slow / t_fast:.1f}x "
          f"({len(samples)} chains, {min(lengths)}-{max(lengths)} steps{where})")
    print(f"  naive one generation at a time: {t_one:.2f} s ({t_one / t_fast:.1f}x); "
          f"{sum(n + 1 for n in lengths)} forced answers, identical in all three")
    print(json.dumps({"bench": "faithfulness", "ratio": round(t_slow / t_fast, 3), "naive_s": round(t_slow, 4),
                      "prefix_reuse_s": round(t_fast, 4), "one_at_a_time_s": round(t_one, 4), "chains": len(samples),
                      "device": args.device, "dtype": args.dtype}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
