"""The lab's training stages, a part of :class:`~sftlens.lab.runner.Lab`: the base model (pretraining
on the world's texts), each condition's model (TRL SFT from its start model, or the condition's own
training, e.g. C7's GRPO) and the start model's pass@k profiles that set difficulty bands. Each stage
writes atomically and is skipped when its output exists (see :mod:`sftlens.lab.runner`)."""

from __future__ import annotations

import os
import shutil
import time

from ..core.format import completion_text, prompt_text
from ..core.record import Example, atomic_write_json, read_jsonl, write_jsonl
from .conditions import CONDITIONS, BuildContext, TrainContext
from .worlds import get_world


class RunTraining:
    """The training stages of a lab run (a mixin: ``self`` is a :class:`~sftlens.lab.runner.Lab`)."""

    # ---- stage 2: base model -------------------------------------------------------------------
    def _save_model(self, model, tok, name: str, info: dict) -> None:
        tmp = self.out / "models" / f".tmp-{name}"
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        atomic_write_json(tmp / "sftlens.json", info)
        final = self.model_dir(name)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)

    def stage_base(self, name: str = "base", size: str | None = None) -> None:
        """Pretrain the base from scratch on fact sentences, fact Q/A and simpler worked problems.

        ``name`` and ``size`` make another base of another size (default: the preset's) on the same
        texts with the tokenizer of ``models/base``, which must exist: one vocabulary for every model
        of the run, so logits can be mixed id by id (proxy-tuning, C9)."""
        if (self.model_dir(name) / "sftlens.json").exists():
            return
        from transformers import AutoTokenizer

        from ..models.tiny import build_tokenizer, make_model, n_params
        from ..train.pretrain import pretrain

        t0 = time.time()
        self._seed(1)
        p = self.preset
        w = self.world()
        pre = self.load("pretrain")
        facts = self.load("facts")
        drills = get_world(self.world_name).drills(w, p, self.seed)  # extra pretraining lines (shop: arithmetic)
        if name == "base":
            every = [e for n in ["pretrain", "train", "test", "facts"] + [f"variant_{v}" for v in self.variant_names()]
                     for e in self.load(n)]
            corpus = [prompt_text(e) + completion_text(e) for e in every] + w.fact_corpus()
            corpus += drills + get_world(self.world_name).tokenizer_texts(w)
            # condition sets may bring new words (e.g. random instructions): every claim's, whichever this run
            # tests, so the base (and every number after it) is the same for any --claims
            for c in self.conditions(every_claim=True):
                corpus += [prompt_text(e) + completion_text(e) for e in self.training_set(c)]
            tok = build_tokenizer(corpus, extra_words=get_world(self.world_name).vocabulary(w))
        else:
            tok = AutoTokenizer.from_pretrained(self.model_dir("base"))
        texts = (w.fact_corpus() * p.fact_repeats
                 + [prompt_text(e) + completion_text(e) for e in facts] * p.probe_repeats
                 + [prompt_text(e) + completion_text(e) for e in pre] + drills)
        model = make_model(tok, size or p.size, max_positions=p.max_positions, seed=self.seed)
        with self._progress() as prog:
            task = prog.add_task(f"pretrain {name} ({self.world_name})", total=p.pretrain.steps, info="")
            losses = pretrain(model, tok, texts, p.pretrain,
                              on_step=lambda s, l: prog.update(task, advance=1, info=f"loss {l:.3f}"))
        self._save_model(model, tok, name, {"kind": "pretrained", "size": size or p.size, "params": n_params(model),
                                            "final_loss": sum(losses[-20:]) / min(20, len(losses)),
                                            # the loss every tenth of the run: where pretraining could have stopped
                                            "loss_curve": [[i + 1, round(losses[i], 4)]
                                                           for i in range(0, len(losses), max(1, len(losses) // 10))],
                                            "steps": p.pretrain.steps, "texts": len(texts)})
        self._time("pretrain" if name == "base" else f"pretrain_{name}", t0)

    # ---- stage 3: training (SFT, or a condition's own) ----------------------------------------------
    def training_set(self, condition: str) -> list[Example]:
        """The training set of a data condition, built from ``train.jsonl`` by its operator."""
        if condition not in CONDITIONS:
            raise ValueError(f"unknown condition '{condition}' (valid: {', '.join(CONDITIONS)})")
        heldout = frozenset(e.question for n in ["test"] + [f"variant_{v}" for v in self.variant_names()]
                            for e in self.load(n))
        return CONDITIONS[condition].build(BuildContext(self.load("train"), self.world(), self.seed, self.preset,
                                                        heldout))

    def stage_train(self, condition: str, base: str | None = None, name: str | None = None) -> None:
        """Train the condition's model from its start model and save it as ``models/<name>`` (default:
        the condition's name): TRL SFT on its training set, or the condition's own ``train``. The start
        model is ``base`` when given (SFT of another base, e.g. C9's larger one), else the condition's
        ``start`` (the base unless the condition says)."""
        name = name or condition
        if (self.model_dir(name) / "sftlens.json").exists():
            return
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from ..train.sft import sft

        t0 = time.time()
        self._seed(2)
        cond = CONDITIONS[condition]
        start = base or cond.start
        exs = self.training_set(condition)
        if cond.train is not None and base is None:
            return self._train_own(condition, exs, t0)
        write_jsonl(self.data_dir / "conditions" / f"{condition}.jsonl", exs)
        tok = AutoTokenizer.from_pretrained(self.model_dir(start))
        model = AutoModelForCausalLM.from_pretrained(self.model_dir(start), attn_implementation="eager")
        settings = cond.settings(self.preset)
        with self._progress() as prog:
            task = prog.add_task(f"sft {name}{self._where()}", total=settings.steps, info="")

            curve = []  # (step, training loss) at TRL's logging steps: where a budget could have stopped

            def on_step(step, loss):
                prog.update(task, completed=step, **({"info": f"loss {loss:.3f}"} if loss is not None else {}))
                if loss is not None:
                    curve.append([step, round(loss, 4)])

            model = sft(model, tok, exs, settings, on_step=on_step)
        if settings.lora:
            model = model.merge_and_unload()
        self._save_model(model, tok, name, {"kind": "sft", "condition": condition, "examples": len(exs),
                                            "steps": settings.steps, "lr": settings.lr, "lora": settings.lora,
                                            **({"start": start} if start != "base" else {}), "loss_curve": curve})
        self._time(f"sft_{name}", t0)

    def _train_own(self, condition: str, exs: list[Example], t0: float) -> None:
        """A condition trained by its own ``train`` function (see :class:`~sftlens.lab.conditions.TrainContext`)."""
        cond = CONDITIONS[condition]
        with self._progress() as prog:
            task = prog.add_task(f"train {condition}{self._where()}", total=None, info="")
            ctx = TrainContext(
                examples=exs, start=self.model_dir(cond.start), start_name=cond.start, world=self.world(),
                seed=self.seed, preset=self.preset, load=self.load,
                profile=lambda name, examples: self.profile(cond.start, name, examples),
                on_step=lambda done, total, info: prog.update(task, completed=done, total=total, info=info))
            trained = cond.train(ctx)
        write_jsonl(self.data_dir / "conditions" / f"{condition}.jsonl", trained.examples)
        kind = trained.info.get("kind", "trained")
        self._save_model(trained.model, trained.tokenizer, condition,
                         {"kind": kind, "condition": condition, "start": cond.start, **trained.info})
        self._time(f"{kind}_{condition}", t0)

    def profile(self, model: str, name: str, examples: list[Example]) -> list[Example]:
        """``examples`` with ``model``'s pass rate and band (:func:`sftlens.data.difficulty.profile`:
        ``preset.profile_k`` samples each at temperature 0.8, the preset's generation length, this run's
        seed), cached in ``eval/<model>/profile_<name>.jsonl`` (tied to the model like its evaluations)."""
        from ..data.difficulty import profile
        from ..models.lm import load_lm

        self.claim_eval_dir(model)
        path = self.eval_path(model, f"profile_{name}")
        if not path.exists():
            t0 = time.time()
            lm = load_lm(str(self.model_dir(model)))
            lm.name = model
            p = self.preset
            write_jsonl(path, profile(lm, examples, k=p.profile_k, temperature=0.8, seed=self.seed,
                                      max_new_tokens=p.max_new_tokens, batch_size=p.gen_batch))
            self._time(f"profile_{model}_{name}", t0)
        return read_jsonl(path)

    def profiled(self, model: str, name: str) -> list[Example]:
        """A finished :meth:`profile` (empty when none was made)."""
        path = self.eval_path(model, f"profile_{name}")
        return read_jsonl(path) if path.exists() else []
