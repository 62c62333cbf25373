"""The process executor's workers end with the lab that started them (kill -9 included)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

PARENT = textwrap.dedent('''
    import os, sys, time
    from sftlens.lab.executors import worker_pool

    def note_pid_then_sleep(path):
        with open(path, "w") as f:
            f.write(str(os.getpid()))
        time.sleep(120)  # a long training stage

    if __name__ == "__main__":
        with worker_pool(workers=1, threads=1) as pool:
            pool.submit(note_pid_then_sleep, sys.argv[1])
            time.sleep(120)
''')


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie waiting for its reaper is gone too
        return f.read().split(")")[-1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to see a process's state")
def test_workers_end_when_the_lab_is_killed(tmp_path):
    """A worker training for minutes must not outlive ``kill -9`` of its lab: it would go on writing into
    the run folder that the rerun resumes. Without the watchdog this worker sleeps out its 120 s."""
    script, pid_file = tmp_path / "parent.py", tmp_path / "worker.pid"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script), str(pid_file)], cwd=tmp_path,
                              env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        deadline = time.time() + 60
        while not (pid_file.exists() and pid_file.read_text()) and time.time() < deadline:
            time.sleep(0.2)
        worker = int(pid_file.read_text())
        assert _alive(worker)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.time() + 10
        while _alive(worker) and time.time() < deadline:
            time.sleep(0.2)
        assert not _alive(worker), "the worker outlived its parent"
    finally:
        parent.kill()
        if pid_file.exists() and pid_file.read_text() and _alive(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
