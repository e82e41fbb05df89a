"""A real cluster on loopback for the client's tests: teacher-sim, a
coordinator on RocksDB and a worker, the binaries of $DISTILLERY_BIN_DIR.
Each listens on a port the kernel picks (127.0.0.1:0) and prints
"listening on ADDRESS", which is waited for: no fixed sleeps.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from typing import List, Optional


class Process:
    """A child process whose stdout and stderr are collected in memory."""

    def __init__(self, binary: str, args: List[str], cwd: str):
        bin_dir = os.path.abspath(
            os.environ.get("DISTILLERY_BIN_DIR", "build/bin"))
        self.name = binary
        self._out: List[str] = []
        self._err: List[str] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self.proc = subprocess.Popen(
            [os.path.join(bin_dir, binary)] + args, cwd=cwd,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for stream, sink in ((self.proc.stdout, self._out),
                             (self.proc.stderr, self._err)):
            threading.Thread(target=self._drain, args=(stream, sink),
                             daemon=True).start()

    def _drain(self, stream, sink: List[str]) -> None:
        for line in stream:
            with self._changed:
                sink.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def stderr(self) -> str:
        with self._lock:
            return "".join(self._err)

    def wait_for_address(self, timeout: float = 30.0) -> str:
        """The ADDRESS of its "listening on ADDRESS" line."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self._out:
                    if "listening on " in line:
                        return line.split("listening on ", 1)[1].strip()
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} did not start: "
                                       f"{''.join(self._err)[-2000:]}")
                self._changed.wait(min(left, 0.5))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Cluster:
    """teacher-sim, a coordinator and one worker, in a temporary folder."""

    def __init__(self, sim_args: Optional[List[str]] = None,
                 coordinator_args: Optional[List[str]] = None,
                 workers: int = 1, before_start=None):
        self.dir = tempfile.mkdtemp(prefix="distillery-python-")
        self.processes: List[Process] = []
        try:
            if before_start is not None:
                before_start(self.dir)
            sim = self._spawn("teacher-sim", ["--listen", "127.0.0.1:0",
                                              "--latency-ms", "2"] +
                              (sim_args or []))
            self.sim_address = sim.wait_for_address()
            self.teachers = os.path.join(self.dir, "teachers.yaml")
            with open(self.teachers, "w") as f:
                f.write("teachers:\n"
                        "  - name: sim\n    api: openai\n"
                        f"    base_url: http://{self.sim_address}/v1\n"
                        "    max_tokens_field: max_tokens\n"
                        "    max_concurrency: 16\n")
            self.coordinator = self._spawn(
                "distillery-coordinator",
                ["--listen", "127.0.0.1:0", "--data-dir",
                 os.path.join(self.dir, "data"), "--teachers", self.teachers,
                 "--lease-seconds", "3", "--heartbeat-ms", "300"] +
                (coordinator_args or []))
            self.address = self.coordinator.wait_for_address()
            for i in range(workers):
                self._spawn("distillery-worker",
                            ["--coordinator", self.address, "--teachers",
                             self.teachers, "--name", f"w{i}"])
        except BaseException:
            self.close(keep=True)
            raise

    def _spawn(self, binary: str, args: List[str]) -> Process:
        p = Process(binary, args, self.dir)
        self.processes.append(p)
        return p

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.stderr()[-3000:]}"
                         for p in self.processes)

    def close(self, keep: bool = False) -> None:
        for p in reversed(self.processes):
            p.stop()
        if not keep:
            shutil.rmtree(self.dir, ignore_errors=True)
