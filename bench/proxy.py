"""Benchmark: proxy-tuned decoding (base + expert + anti-expert, three KV caches) vs plain decoding of
the base alone, batch size 32, greedy, the same number of new tokens.

The sizes follow the paper's setting of a base much larger than its small expert pair (Llama2-70B
steered by 7B models): by default a base of 8 layers, 320 wide (~11M weights) and an expert and
anti-expert of the ``base`` tiny size (4 layers, 128 wide, ~0.9M), untrained (speed does not depend
on the weights), on the shop world's tokenizer. Both decoders run ``generate`` with
``min_new_tokens = max_new_tokens`` so every row decodes every step; on a CPU the time is the
process's CPU time (one thread), so other jobs on a shared machine do not count. The goal is
proxy / plain <= 3x.
Run: ``make bench`` or ``python bench/proxy.py [--device cuda]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=32, help="prompts decoded together (default 32)")
    ap.add_argument("--new-tokens", type=int, default=48, help="tokens decoded per prompt (default 48)")
    ap.add_argument("--base-width", type=int, default=320, help="hidden size of the base (default 320)")
    ap.add_argument("--base-layers", type=int, default=8, help="layers of the base (default 8)")
    ap.add_argument("--expert-size", default="base", help="tiny size of the expert and anti-expert (default base)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each decoder; the fastest counts")
    ap.add_argument("--device", default="cpu", help="torch device (cpu, cuda, ...)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = ap.parse_args(argv)

    import torch

    from sftlens.core.format import prompt_text
    from sftlens.models.proxy import ProxyModel
    from sftlens.models.tiny import TinySize, build_tokenizer, make_model, n_params
    from sftlens.tasks.shop import ShopConfig, ShopWorld

    torch.set_num_threads(args.threads)
    world = ShopWorld(ShopConfig(seed=0))
    problems = world.problems(args.batch_size, seed=1, items_range=(2, 3))
    tok = build_tokenizer([prompt_text(e) for e in problems] + world.fact_corpus())
    width, layers = args.base_width, args.base_layers
    base = make_model(tok, TinySize(hidden=width, layers=layers, heads=max(1, width // 64), intermediate=3 * width),
                      max_positions=512, seed=0)
    expert, anti = (make_model(tok, args.expert_size, max_positions=512, seed=s) for s in (1, 2))
    device = torch.device(args.device)
    for m in (base, expert, anti):
        m.to(device).eval()
    proxy = ProxyModel(base, expert, anti, alpha=1.0).eval()
    enc = tok([prompt_text(e) for e in problems], return_tensors="pt", padding=True).to(device)
    kw = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False,
              pad_token_id=tok.pad_token_id)

    def timed(model) -> tuple[float, torch.Tensor]:
        """Seconds of one greedy generate: process CPU time on a CPU (one thread: what the decoder costs,
        not what other jobs on a shared machine take), wall time on an accelerator."""
        clock = time.perf_counter if device.type != "cpu" else time.process_time
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = clock()
        with torch.no_grad():
            out = model.generate(**enc, **kw)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return clock() - t, out

    timed(base)  # warm-up (first-call allocations, lazy imports)
    timed(proxy)
    t_plain = t_proxy = float("inf")
    for _ in range(args.repeats):  # interleaved, so a slow spell of the machine hits both
        t, plain_out = timed(base)
        t_plain = min(t_plain, t)
        t, proxy_out = timed(proxy)
        t_proxy = min(t_proxy, t)
    assert plain_out.shape == proxy_out.shape  # the same number of steps for both
    ratio = t_proxy / t_plain
    what = "CPU time" if device.type == "cpu" else "wall time"
    print(f"proxy-tuned decoding, batch {args.batch_size} x {args.new_tokens} new tokens on {args.device} "
          f"({args.threads} thread(s), {what}, best of {args.repeats}): base alone {t_plain:.2f} s, proxy (base {n_params(base) / 1e6:.1f}M + "
          f"2 x expert {n_params(expert) / 1e6:.2f}M) {t_proxy:.2f} s, ratio {ratio:.2f}x (goal <= 3x)")
    out = {"bench": "proxy", "ratio": round(ratio, 3), "plain_s": round(t_plain, 4), "proxy_s": round(t_proxy, 4),
           "batch_size": args.batch_size, "new_tokens": args.new_tokens, "device": args.device,
           "base_params": n_params(base), "expert_params": n_params(expert)}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
