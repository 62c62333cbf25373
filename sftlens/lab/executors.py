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
from contextlib import contextmanager
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
    claims: tuple[str, ...] | None = None  # the claims the run tests (None: the preset's)

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
        lab = Lab(out=Path(job.out), preset=get_preset(job.preset, job.seed, job.claims), seed=job.seed, console=console)
        lab.world_run(job.world).run_stages(other_worlds=False)
    finally:
        torch.set_num_threads(before)
    return job


def _serial(jobs: list[Job], threads: int, workers: int, console, address: str | None) -> None:
    for job in jobs:
        run_job(job, threads, console)


def _exit_with_parent(parent: int, every: float = 1.0) -> None:
    """Worker initializer: a daemon thread that ends this worker once its parent ``parent`` is gone.

    A pool's workers outlive a parent killed by a signal it cannot handle (``kill -9``, an OOM kill):
    left alone they would go on training into the run folder while the rerun that resumes it starts
    the same stages again. Polling ``os.getppid()`` works wherever Python does (on Linux
    ``prctl(PR_SET_PDEATHSIG)`` would too, but nowhere else)."""
    import threading
    import time

    def watch():
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(1)  # the parent is gone: nobody will read this worker's results

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


@contextmanager
def worker_pool(workers: int, threads: int):
    """A ``ProcessPoolExecutor`` of ``workers`` fresh processes (spawned: no forked torch state) on
    ``threads`` torch threads each, every one ending itself if this process dies
    (:func:`_exit_with_parent`)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    env = {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # inherited by the spawned workers before torch is imported there
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"),
                                 initializer=_exit_with_parent, initargs=(os.getpid(),)) as pool:
            yield pool
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _process(jobs: list[Job], threads: int, workers: int, console, address: str | None) -> None:
    """A local pool of ``workers`` processes (:func:`worker_pool`), one job each at a time."""
    from concurrent.futures import FIRST_EXCEPTION, wait

    with worker_pool(workers, threads) as pool:
        futures = {pool.submit(run_job, job, threads): job for job in jobs}

        def wait_some(pending):
            done, rest = wait(pending, timeout=2.0, return_when=FIRST_EXCEPTION)
            return list(done), list(rest)

        _follow(futures, wait_some, lambda f: f.result(), console)


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


def _follow(jobs: dict, wait_some: Callable, result: Callable, console) -> None:
    """Wait for every job (``jobs``: handle -> :class:`Job`) with one progress row each, showing its
    finished stages (read from the run folder every 2 s). ``wait_some(pending) -> (done, pending)``
    waits up to 2 s; ``result(handle)`` re-raises the job's exception, so the first failure ends the run."""
    from ..core.console import progress

    pending = list(jobs)
    with progress(console) as prog:
        rows = {h: prog.add_task(f"job: {job.label()}", total=1, info="") for h, job in jobs.items()}
        while pending:
            done, pending = wait_some(pending)
            for h in done:
                result(h)
                prog.update(rows[h], completed=1, info=_stages_done(jobs[h]))
            for h in pending:
                prog.update(rows[h], info=_stages_done(jobs[h]))


def _ray(jobs: list[Job], threads: int, workers: int, console, address: str | None) -> None:
    """Ray tasks, one per job, each asking for ``threads`` CPUs: a local instance (``ray.init()``, at most
    ``workers`` CPUs) or the cluster at ``address``. The run folder must be visible to every node."""
    try:
        import ray
    except ImportError:
        raise UserError("--executor ray needs Ray: pip install 'sftlens[ray]' (or pip install ray)") from None
    started = not ray.is_initialized()
    if started:
        import logging

        kw = {"address": address} if address else {"num_cpus": workers}
        ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR, **kw,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}})
    try:
        remote = ray.remote(num_cpus=threads, max_retries=0)(run_job)
        refs = {remote.remote(job, threads): job for job in jobs}

        def result(ref):
            try:
                ray.get(ref)
            except ray.exceptions.RayTaskError as e:  # the job's own exception, as raised there
                raise e.as_instanceof_cause() from None

        _follow(refs, lambda pending: ray.wait(pending, num_returns=1, timeout=2.0), result, console)
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


def run_lab_jobs(labs: list, preset: str, executor: str | None, workers: int = 1, threads: int = 1, console=None,
                 address: str | None = None, claims: list[str] | None = None) -> None:
    """Every world of every seed's run (``labs``: one :class:`~sftlens.lab.runner.Lab` per seed, testing
    ``claims`` or the preset's) as one job on ``executor`` (nothing when it is ``None``: the labs then run everything themselves). Each world's
    settings are checked here first, so a mismatch is refused before any job starts."""
    if executor is None:
        return
    jobs = []
    for lab in labs:
        for world in [lab.world_name, *lab.other_worlds()]:
            lab.world_run(world).check_config()
            jobs.append(Job(out=str(lab.out), preset=preset, seed=lab.seed, world=world,
                            claims=tuple(claims) if claims is not None else None))
    run_jobs(jobs, executor=executor, workers=workers, threads=threads, console=console, address=address)


__all__ = ["EXECUTORS", "Job", "run_job", "run_jobs", "run_lab_jobs", "worker_pool"]
