"""Several worker processes on this machine, configured by ``TF_CONFIG`` on loopback ports.

``MultiWorkerMirroredStrategy`` reads its cluster from the ``TF_CONFIG`` environment
variable; on many machines each one sets it by hand (README). This module does the
same for a one-machine cluster, for tests, benchmarks and trying multi-worker runs::

    with LocalCluster(["python", "-m", "train.meta_train", ...], num_workers=2) as cluster:
        cluster.wait(timeout=600)

Worker ``i`` runs the same command with ``TF_CONFIG`` naming it ``worker`` ``i`` (worker
0 is the chief) and writes stdout/stderr to ``log_dir/worker_i.log``. Leaving the
``with`` block kills any worker still running.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Sequence


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago (bound to port 0)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("localhost", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tf_config(ports: Sequence[int], index: int) -> str:
    """The ``TF_CONFIG`` JSON of worker ``index`` in a cluster of loopback workers."""
    cluster = {"worker": [f"localhost:{port}" for port in ports]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})


class LocalCluster:
    """Starts ``num_workers`` copies of ``command``, each with its own ``TF_CONFIG``."""

    def __init__(
        self,
        command: Sequence[str],
        num_workers: int,
        log_dir: str,
        env: dict[str, str] | None = None,
        ports: Sequence[int] | None = None,
        cpus: Sequence[Sequence[int]] | None = None,
    ):
        if num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        self.command = list(command)
        self.ports = list(ports) if ports is not None else free_ports(num_workers)
        if len(self.ports) != num_workers:
            raise ValueError(f"{num_workers} workers need {num_workers} ports, got {self.ports}")
        self.log_dir = log_dir
        self.env = dict(os.environ if env is None else env)
        self.cpus = cpus
        self.processes: list[subprocess.Popen] = []

    def start(self) -> LocalCluster:
        os.makedirs(self.log_dir, exist_ok=True)
        for index in range(len(self.ports)):
            self.start_worker(index)
        return self

    def start_worker(self, index: int) -> subprocess.Popen:
        """Starts (or restarts) worker ``index``."""
        env = dict(self.env, TF_CONFIG=tf_config(self.ports, index))
        with open(os.path.join(self.log_dir, f"worker_{index}.log"), "ab") as log:
            process = subprocess.Popen(self.command, env=env, stdout=log, stderr=subprocess.STDOUT)
        if self.cpus:  # before TensorFlow starts its threads (they inherit the affinity)
            os.sched_setaffinity(process.pid, self.cpus[index])
        if index < len(self.processes):
            self.processes[index] = process
        else:
            self.processes.append(process)
        return process

    def wait(self, timeout: float) -> list[int]:
        """Waits for every worker to exit; their return codes. Raises ``TimeoutError``
        (after killing them) when ``timeout`` seconds pass first."""
        deadline = time.monotonic() + timeout
        for process in self.processes:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.kill()
                raise TimeoutError(f"workers still running after {timeout:.0f}s: {self.logs_tail()}") from None
        return [process.returncode for process in self.processes]

    def kill(self) -> None:
        """Kills every worker still running."""
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()

    def logs_tail(self, chars: int = 2000) -> str:
        """The end of every worker's log, for error messages."""
        parts = []
        for index in range(len(self.processes)):
            with open(os.path.join(self.log_dir, f"worker_{index}.log"), "rb") as log:
                parts.append(f"--- worker {index}:\n" + log.read().decode(errors="replace")[-chars:])
        return "\n".join(parts)

    def __enter__(self):  # returns self (typing.Self needs Python 3.11)
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
