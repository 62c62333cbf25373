"""The resumable lab: world -> base model -> SFT under each data condition -> audit -> claims.

Every stage writes its output atomically (a temporary folder or file, then a rename) and is skipped
when its output already exists, so rerunning with the same ``--out`` resumes where a run stopped and
an interrupted stage restarts cleanly. ``DIR/config.json`` pins the preset and seed; a rerun with
other settings is refused rather than mixing two experiments. Timings go to ``DIR/timings.json`` so
``DIR/results.json`` holds only measured, seed-determined numbers.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
import torch

from ..core.console import progress
from ..core.errors import LabConfigMismatch
from ..core.record import Example, Sample, atomic_write_json, atomic_write_text, read_jsonl, write_jsonl
from .claims import analyze_run, selected_claims
from .conditions import CONDITIONS, with_starts
from .models import RunModels
from .training import RunTraining
from .presets import Preset, get_preset
from .worlds import PRIMARY_WORLD, get_world


@dataclass
class Lab(RunModels, RunTraining):
    """One lab run in ``out``. Call :meth:`run`."""

    out: Path
    preset: Preset
    seed: int = 0
    console: object = None
    world_name: str = PRIMARY_WORLD   # which lab world this run generates (sftlens.lab.worlds)
    timings: dict[str, float] = field(default_factory=dict)
    # per-sample rows of finished evaluations, read once: every claim's analysis and evidence reads them
    _rows: dict[tuple[str, str], list[dict]] = field(default_factory=dict, repr=False)
    _world_runs: dict[str, "Lab"] = field(default_factory=dict, repr=False)
    _claimed: set[str] = field(default_factory=set, repr=False)  # eval dirs already tied to their model

    # ---- helpers -------------------------------------------------------------------------
    def _log(self, msg: str) -> None:
        if self.console is not None:
            self.console.print(msg)

    def _progress(self):
        return progress(self.console)

    def _where(self) -> str:
        return "" if self.world_name == PRIMARY_WORLD else f" ({self.world_name})"

    def _seed(self, salt: int = 0) -> None:
        random.seed(self.seed + salt)
        torch.manual_seed(self.seed + salt)

    def _time(self, name: str, t0: float) -> None:
        self.timings[name] = round(time.time() - t0, 2)
        path = self.out / "timings.json"
        old = json.loads(path.read_text()) if path.exists() else {}
        old.update({name: self.timings[name]})
        atomic_write_json(path, old)

    @property
    def data_dir(self) -> Path:
        return self.out / "data"

    def model_dir(self, name: str) -> Path:
        return self.out / "models" / name

    @property
    def bootstrap(self) -> int:
        return self.preset.bootstrap

    def claims(self) -> dict:
        """The claims this run tests (the preset's, default all registered)."""
        return selected_claims(self.preset.claims)

    def conditions(self, every_claim: bool = False) -> list[str]:
        """The data conditions the run's claims (or, with ``every_claim``, all registered claims) need in
        this run's world, in registration order."""
        claims = selected_claims(None) if every_claim else self.claims()
        wanted = {c for claim in claims.values() for arm in claim.arms().values()
                  if arm.world == self.world_name for c in arm.conditions}
        return with_starts(wanted)  # and the models they start from

    def other_worlds(self) -> list[str]:
        """The worlds besides this one that the run's claims (or their controls) are measured in."""
        if self.world_name != PRIMARY_WORLD:
            return []
        return sorted({arm.world for claim in self.claims().values() for arm in claim.arms().values()}
                      - {self.world_name})

    def world_run(self, name: str) -> "Lab":
        """The run of world ``name`` for this seed: this run for its own world, else the run in
        ``DIR/worlds/<name>/`` (same seed, the preset as that world adapts it)."""
        if name == self.world_name:
            return self
        if name not in self._world_runs:
            self._world_runs[name] = Lab(out=self.out / "worlds" / name, preset=get_world(name).adapt(self.preset),
                                         seed=self.seed, console=self.console, world_name=name)
        return self._world_runs[name]

    # ---- config ----------------------------------------------------------------------------
    def check_config(self) -> None:
        """Write ``config.json`` on a fresh run; refuse a resume with different settings. The claims
        a run tests are not a setting: no stage's numbers depend on them (the tokenizer is built for
        every claim's conditions), so a resume may test others, adding what they need."""
        cfg = {"preset": self.preset.to_dict(), "seed": self.seed}
        if self.world_name != PRIMARY_WORLD:
            cfg["world"] = self.world_name
        path = self.out / "config.json"
        if path.exists():
            old = json.loads(path.read_text())
            if _settings(json.loads(json.dumps(cfg))) != _settings(old):
                raise LabConfigMismatch(
                    f"{self.out} holds a run with other settings (preset '{old['preset']['name']}', seed {old['seed']}); "
                    "use another --out or delete it")
        else:
            self.out.mkdir(parents=True, exist_ok=True)
            atomic_write_json(path, cfg)
        # leftovers of an interrupted stage are discarded; that stage reruns from scratch
        for junk in list(self.out.glob(".tmp-*")) + list((self.out / "models").glob(".tmp-*")):
            shutil.rmtree(junk, ignore_errors=True)

    # ---- stage 1: data -----------------------------------------------------------------------
    def world(self):
        return get_world(self.world_name).make(self.preset.world)

    def stage_data(self) -> None:
        """Generate the world and its splits into ``DIR/data``; build the tokenizer."""
        if (self.data_dir / "DONE").exists():
            return
        t0 = time.time()
        p = self.preset
        w = self.world()
        sp = get_world(self.world_name).splits(w, p, self.seed)
        tmp = self.out / ".tmp-data"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        atomic_write_json(tmp / "world.json", w.to_dict())
        write_jsonl(tmp / "pretrain.jsonl", sp.pretrain_problems)
        write_jsonl(tmp / "train.jsonl", sp.train)
        write_jsonl(tmp / "test.jsonl", sp.test)
        write_jsonl(tmp / "facts.jsonl", sp.facts)
        for name, exs in sp.variants.items():
            write_jsonl(tmp / f"variant_{name}.jsonl", exs)
        (tmp / "DONE").write_text("ok\n")
        shutil.rmtree(self.data_dir, ignore_errors=True)
        os.replace(tmp, self.data_dir)
        self._log(f"[green]✓[/] data ({self.world_name}): {len(sp.pretrain_problems)} pretraining problems, {len(sp.train)} SFT, "
                  f"{len(sp.test)} test, variants {', '.join(f'{k} {len(v)}' for k, v in sp.variants.items())}, "
                  f"{len(sp.facts)} fact probes")
        self._time("data", t0)

    def load(self, name: str) -> list[Example]:
        return read_jsonl(self.data_dir / f"{name}.jsonl")

    def variant_names(self) -> list[str]:
        return sorted(p.stem[len("variant_"):] for p in self.data_dir.glob("variant_*.jsonl"))

    def eval_sets(self, model: str | None = None) -> dict[str, list[Example]]:
        """Evaluation sets by name; for a condition with an ``eval_transform`` (C3: the instruction
        kind it was trained with), the test and variant problems as that model is asked them."""
        sets = {"test": self.load("test")}
        for v in self.variant_names():
            sets[f"variant_{v}"] = self.load(f"variant_{v}")
        cond = CONDITIONS.get(model or "")
        if cond is not None and cond.eval_transform is not None:
            sets = {k: cond.eval_transform(v, self.seed) for k, v in sets.items()}
        facts = self.load("facts")
        if facts:  # worlds without facts have no fact probes
            sets["facts"] = facts
        return sets

    # ---- stage 4: evaluation -----------------------------------------------------------------
    def eval_path(self, model: str, set_name: str) -> Path:
        return self.out / "eval" / model / f"{set_name}.jsonl"

    def claim_eval_dir(self, model: str) -> None:
        """Tie ``eval/<model>/`` to the model it scores (``eval/<model>/MODEL``): evaluations made of
        another model (retrained, replaced) are discarded and redone, never reused. Checked once per
        model and run (the stages that write there all call it)."""
        if model in self._claimed:
            return
        d = self.out / "eval" / model
        stamp, ident = d / "MODEL", self.model_identity(model)
        if d.exists() and (not stamp.exists() or stamp.read_text().strip() != ident):
            self._log(f"[yellow]![/] eval/{model}: made by another model; evaluating again")
            shutil.rmtree(d)
            self._rows = {k: v for k, v in self._rows.items() if k[0] != model}
        d.mkdir(parents=True, exist_ok=True)
        if not stamp.exists():
            atomic_write_text(stamp, ident + "\n")
        self._claimed.add(model)

    def stage_eval(self, model_name: str, scorer=None, sets: tuple[str, ...] | None = None) -> None:
        """Generate and score ``model_name`` on every evaluation set (or those named in ``sets``; one
        file per set, skipped if done).

        Information gain (scored by ``scorer``, the base model) is computed on the in-distribution test set.
        """
        from ..evaluate import generate_samples, score_samples

        self.claim_eval_dir(model_name)
        todo = [s for s in self.eval_sets(model_name) if (sets is None or s in sets)
                and not self.eval_path(model_name, s).exists()]
        if not todo or self.reuse_twin(model_name, todo):
            return
        t0 = time.time()
        self._seed(3)
        p = self.preset
        w = self.world()
        lm = self.load_model(model_name)
        by_name = self.eval_sets(model_name)
        with self._progress() as prog:
            for s in todo:
                exs = by_name[s]
                task = prog.add_task(f"eval {model_name}{self._where()}: {s}", total=len(exs) * (2 if s == "test" else 1), info="")
                samples = generate_samples(lm, exs, max_new_tokens=p.max_new_tokens, batch_size=p.gen_batch,
                                           progress=lambda n: prog.advance(task, n), set=s)
                rows = score_samples(samples, exs, scorer=scorer if s == "test" else None, verifier=w,
                                     batch_size=p.ig_batch, progress=lambda n: prog.advance(task, n))
                recs = [{"sample": sm.to_dict(), "metrics": r} for sm, r in zip(samples, rows)]
                write_jsonl(self.eval_path(model_name, s), recs)
        self._time(f"eval_{model_name}", t0)

    def reuse_twin(self, model: str, names: list[str]) -> bool:
        """Give ``model`` the evaluation files ``names`` of an evaluated model with the same weights (a
        condition that kept its start model), relabelled: the same weights asked the same problems with the
        same seeds give the same numbers. False (nothing copied) when no such model has them all."""
        def plain(m: str) -> bool:  # asked the clean test problems, as every twin must be
            return CONDITIONS.get(m) is None or CONDITIONS[m].eval_transform is None

        ident = self.model_identity(model)
        twin = next((m for m in self.models() if m != model and plain(m) and plain(model)
                     and all(self.eval_path(m, n).exists() for n in names) and self.model_identity(m) == ident), None)
        if twin is None:
            return False
        for n in names:
            recs = [json.loads(line) for line in self.eval_path(twin, n).read_text(encoding="utf-8").splitlines() if line]
            for rec in recs:
                for d in (rec, rec.get("sample") or {}):
                    if d.get("model") == twin:
                        d["model"] = model
            write_jsonl(self.eval_path(model, n), recs)
        self._log(f"[green]✓[/] eval/{model}: the weights of '{twin}', whose evaluations it takes ({', '.join(names)})")
        return True

    def stage_faithfulness(self, model_name: str) -> None:
        """The C2 battery (early answering, adding mistakes, paraphrasing, filler) on the model's own
        chains for the first ``faith_n`` test problems -> ``eval/<model>/faithfulness.jsonl``."""
        from ..metrics.faithfulness import run_battery

        path = self.eval_path(model_name, "faithfulness")
        if not get_world(self.world_name).faithfulness:
            return
        self.claim_eval_dir(model_name)
        if path.exists() or self.reuse_twin(model_name, ["faithfulness"]):
            return
        t0 = time.time()
        self._seed(4)
        exs = self.eval_sets(model_name)["test"][: self.preset.faith_n]
        ids = {e.id for e in exs}
        samples = [s for s in self.samples(model_name, "test") if s.id in ids]
        lm = self.load_model(model_name)
        with self._progress() as prog:
            task = prog.add_task(f"faithfulness {model_name}", total=4 * len(exs), info="")
            rows = run_battery(lm, exs, samples, world=self.world(), seed=self.seed, batch_size=self.preset.gen_batch,
                               max_new_tokens=self.preset.max_new_tokens, progress=lambda n: prog.advance(task, n))
        write_jsonl(path, rows)
        self._time(f"faithfulness_{model_name}", t0)

    def has_faithfulness(self, model: str) -> bool:
        return self.eval_path(model, "faithfulness").exists()

    def model_info(self, model: str) -> dict:
        """What ``models/<model>/sftlens.json`` says of how the model was made."""
        return json.loads((self.model_dir(model) / "sftlens.json").read_text())

    def faith_rows(self, model: str) -> list[dict]:
        """Battery rows of a finished faithfulness stage."""
        with open(self.eval_path(model, "faithfulness"), encoding="utf-8") as f:
            return [json.loads(l) for l in f if l.strip()]

    def rows(self, model: str, set_name: str = "test") -> list[dict]:
        """Per-sample metric rows of a finished evaluation (read from disk once per run; callers must
        not modify them)."""
        if (model, set_name) not in self._rows:
            with open(self.eval_path(model, set_name), encoding="utf-8") as f:
                self._rows[(model, set_name)] = [json.loads(line)["metrics"] for line in f if line.strip()]
        return self._rows[(model, set_name)]

    def samples(self, model: str, set_name: str = "test") -> list[Sample]:
        """The samples of a finished evaluation."""
        with open(self.eval_path(model, set_name), encoding="utf-8") as f:
            return [Sample.from_dict(json.loads(l)["sample"]) for l in f if l.strip()]

    # ---- the whole run -------------------------------------------------------------------------
    def models(self) -> list[str]:
        return ["base"] + self.conditions()

    def run_stages(self, other_worlds: bool = True) -> None:
        """Run (or resume) every training and evaluation stage (and, with ``other_worlds``, those of the
        other worlds this run's claims need)."""
        from ..models.lm import load_lm

        quiet_libraries()
        self.check_config()
        self.stage_data()
        self.stage_base()
        for c in self.conditions():
            self.stage_train(c)
        scorer = None
        for m in self.models():
            self.claim_eval_dir(m)  # evaluations of a replaced model are dropped here
            if any(not self.eval_path(m, s).exists() for s in self.eval_sets()):
                if scorer is None:
                    scorer = load_lm(str(self.model_dir("base")))
                    scorer.name = "base"
                self.stage_eval(m, scorer=scorer)
        scorer = None
        for m in self.models():
            self.stage_faithfulness(m)
        for claim in self.claims().values():  # models a claim makes beyond the conditions (C9: a larger base)
            if self.world_name in {arm.world for arm in claim.arms().values()}:
                claim.stages(self)
        for name in self.other_worlds() if other_worlds else []:
            self.world_run(name).run_stages()

    def run(self, seed_runs: list["Lab"] | None = None, out: Path | None = None,
            preset_name: str | None = None) -> dict:
        """Run (or resume) every stage; returns the results dict also written to ``results.json``.

        With ``seed_runs`` (finished runs of other seeds, this one first) the verdicts pool them and
        the results and report go to ``out`` instead of this run's folder."""
        from .report import write_report

        t_all = time.time()
        self.run_stages()
        t0 = time.time()
        results = analyze_run(self, self.claims(), seed_runs=seed_runs)
        if preset_name:
            results["preset"] = preset_name
        target = Path(out) if out is not None else self.out
        # the report first, then the results: a results.json never stands without its report
        write_report(self, results, out=target)
        atomic_write_json(target / "results.json", results)
        self._time("claims_and_report", t0)
        self._time("total_this_invocation", t_all)
        return results


def _settings(config: dict) -> dict:
    """A run's ``config.json`` without the claim selection (which changes what runs, not any number)."""
    config = json.loads(json.dumps(config))
    for d in (config, config.get("preset") or {}):
        if isinstance(d, dict):
            d.pop("claims", None)
    return config


def quiet_libraries() -> None:
    """Silence library progress bars and warnings that would drown our own progress display."""
    import logging
    import warnings

    import datasets
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    logging.getLogger("trl").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="trl")
    warnings.filterwarnings("ignore", module="transformers")


def run_lab(out: str | Path, preset: str = "quick", seed: int | None = None, seeds: list[int] | None = None,
            console=None, executor: str | None = None, workers: int = 1, threads: int = 1,
            address: str | None = None, claims: list[str] | None = None) -> dict:
    """Run or resume the lab in ``out`` with a named preset; returns the results dict.

    One seed (``seed``, or a preset whose ``seeds`` has one) runs in ``out`` itself. Several seeds
    (``seeds``, or the preset's) run in ``out/seed_<s>/`` each (world, initialisation and data order
    all vary with the seed), then ``out/results.json`` and ``out/report.md`` pool them.

    With ``executor`` (``serial``, ``process`` or ``ray``: :mod:`sftlens.lab.executors`) every world
    of every seed is first trained and evaluated as an independent job on ``threads`` torch threads,
    ``workers`` at a time (``address``: a Ray cluster); without it everything runs here, in order, on
    this process's threads. ``claims`` (ids) tests only those claims, training only what they and their
    controls need; a later run in ``out`` may test others (or all), reusing every finished stage.
    """
    from ..core.checks import check_output_path, check_seed
    from ..core.errors import UserError
    from .executors import run_lab_jobs

    out = Path(out)
    if seeds is None:
        seeds = [seed] if seed is not None else list(get_preset(preset).seeds)
    for s in seeds:
        check_seed(s)
    if not seeds or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds: expected distinct seeds >= 0, got {seeds}")
    check_output_path(out, kind="dir")
    if claims is not None:
        selected_claims(claims)  # an unknown id is refused before anything is written
    if len(seeds) == 1:
        lab = Lab(out=out, preset=get_preset(preset, seeds[0], claims), seed=seeds[0], console=console)
        run_lab_jobs([lab], preset, executor, workers, threads, console, address, claims)
        return lab.run()
    config = {"preset": preset, "seeds": list(seeds), **({"claims": list(claims)} if claims is not None else {})}
    path = out / "config.json"
    if path.exists() and _settings(json.loads(path.read_text())) != _settings(config):
        old = json.loads(path.read_text())
        raise LabConfigMismatch(f"{out} holds a run with other settings (preset '{old.get('preset')}', seeds "
                                f"{old.get('seeds')}); use another --out or delete it")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, config)
    each = get_preset(preset).per_seed or preset
    labs = [Lab(out=out / f"seed_{s}", preset=get_preset(each, s, claims), seed=s, console=console) for s in seeds]
    run_lab_jobs(labs, each, executor, workers, threads, console, address, claims)
    for lab in labs:
        lab.run()  # each seed's own results.json and report.md, with its single-seed verdicts
    return labs[0].run(seed_runs=labs, out=out, preset_name=preset)


__all__ = ["Lab", "LabConfigMismatch", "run_lab"]
