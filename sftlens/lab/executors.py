"""Where the lab's independent jobs run: in this process, in worker processes, or on a Ray cluster.

A *job* is one world of one seed: its data, its base and every SFT, evaluation and faithfulness stage
(:meth:`Lab.run_stages` of that world alone). Jobs share nothing but the run folder, so they can run
anywhere that sees it; the claims and the report are computed afterwards in this process from what the
jobs wrote, and the resume rules are the stages' own (a finished stage is skipped wherever it ran).

Every job runs on ``threads`` torch threads (default 1) whatever the executor, so the executor never
changes a number: the same seed gives the same results serially, on two local workers or on Ray.
Parallel workers pay off because a tiny model gains little from a second thread (two one-thread jobs
did 1.44x the work of one two-thread job on this 2-core machine).

>>> sorted(EXECUTORS)
['process', 'ray', 'serial']
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from ..core.errors import UserError


@dataclass(frozen=True)
class Job:
    """One world of one seed's run: ``out`` is the seed's folder (the shop world lives at its top)."""

    out: str
    preset: str
    seed: int
    world: str

    def label(self) -> str:
        return f"seed {self.seed}, {self.world}"


def run_job(job: Job, threads: int = 1, console=None) -> Job:
    """Run (or resume) every stage of ``job``'s world on ``threads`` torch threads; returns the job."""
    from pathlib import Path

    import torch

    from .presets import get_preset
    from .runner import Lab

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        lab = Lab(out=Path(job.out), preset=get_preset(job.preset, job.seed), seed=job.seed, console=console)
        lab.world_run(job.world).run_stages(other_worlds=False)
    finally:
        torch.set_num_threads(before)
    return job


def _serial(jobs: list[Job], threads: int, workers: int, console, address: str | None) -> None:
    for job in jobs:
        run_job(job, threads, console)


def _process(jobs: list[Job], threads: int, workers: int, console, address: str | None) -> None:
    """A local pool of ``workers`` fresh processes (spawned: no forked torch state)."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # inherited by the spawned workers before torch is imported there
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(run_job, job, threads): job for job in jobs}
            _wait_with_progress(futures, console, wait, FIRST_EXCEPTION)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _job_folder(job: Job):
    from pathlib import Path

    from .worlds import PRIMARY_WORLD

    return Path(job.out) if job.world == PRIMARY_WORLD else Path(job.out) / "worlds" / job.world


def _stages_done(job: Job) -> str:
    """What a job has finished so far, read from the ``timings.json`` its stages write."""
    import json

    path = _job_folder(job) / "timings.json"
    try:
        names = [k for k in json.loads(path.read_text()) if not k.startswith(("total", "claims"))]
    except (OSError, ValueError):
        names = []
    return f"{len(names)} stages done" + (f", last: {names[-1]}" if names else "")


def _wait_with_progress(futures: dict, console, wait, first_exception) -> None:
    """Wait for every future with one progress row per job (its finished stages, from the run folder,
    every 2 s); the first failure is raised."""
    from ..core.console import progress

    pending = set(futures)
    with progress(console) as prog:
        rows = {f: prog.add_task(f"job: {job.label()}", total=1, info="") for f, job in futures.items()}
        while pending:
            done, pending = wait(pending, timeout=2.0, return_when=first_exception)
            for f in done:
                f.result()  # re-raises a job's exception here
                prog.update(rows[f], completed=1, info=_stages_done(futures[f]))
            for f in pending:
                prog.update(rows[f], info=_stages_done(futures[f]))


def _ray(jobs: list[Job], threads: int, workers: int, console, address: str | None) -> None:
    """Ray tasks, one per job, each asking for ``threads`` CPUs: a local instance (``ray.init()``, at most
    ``workers`` CPUs) or the cluster at ``address``. The run folder must be visible to every node."""
    try:
        import ray
    except ImportError:
        raise UserError("--executor ray needs Ray: pip install 'sftlens[ray]' (or pip install ray)") from None
    started = not ray.is_initialized()
    if started:
        kw = {"address": address} if address else {"num_cpus": workers}
        import logging

        ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR, **kw,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}})
    try:
        remote = ray.remote(num_cpus=threads, max_retries=0)(run_job)
        refs = {remote.remote(job, threads): job for job in jobs}
        from ..core.console import progress

        pending = list(refs)
        with progress(console) as prog:
            rows = {r: prog.add_task(f"ray job: {job.label()}", total=1, info="") for r, job in refs.items()}
            while pending:
                done, pending = ray.wait(pending, num_returns=1, timeout=2.0)
                for r in done:
                    try:
                        ray.get(r)
                    except ray.exceptions.RayTaskError as e:  # the job's own exception, as raised there
                        raise e.as_instanceof_cause() from None
                    prog.update(rows[r], completed=1, info=_stages_done(refs[r]))
                for r in pending:
                    prog.update(rows[r], info=_stages_done(refs[r]))
    finally:
        if started:
            ray.shutdown()


#: executor name -> ``fn(jobs, threads, workers, console, address)``
EXECUTORS: dict[str, Callable] = {"serial": _serial, "process": _process, "ray": _ray}


def run_jobs(jobs: list[Job], executor: str = "serial", workers: int = 1, threads: int = 1, console=None,
             address: str | None = None) -> None:
    """Run ``jobs`` on the named executor (see the module docstring)."""
    if executor not in EXECUTORS:
        raise UserError(f"--executor: expected one of {', '.join(EXECUTORS)}, got '{executor}'")
    if workers < 1 or threads < 1:
        raise UserError(f"--workers and --threads: expected at least 1, got {workers} and {threads}")
    EXECUTORS[executor](jobs, threads, min(workers, len(jobs)) or 1, console, address)


__all__ = ["EXECUTORS", "Job", "run_job", "run_jobs"]
