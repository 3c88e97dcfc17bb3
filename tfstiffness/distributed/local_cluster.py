"""A tf.distribute cluster on one machine: N worker processes of one command on 127.0.0.1.

Each worker gets its own `TF_CONFIG` (all workers' addresses on free local ports, and its own
index; worker 0 is the chief). Their output is relayed with a `[worker i]` prefix. When a
worker fails, the others are stopped and its exit status is returned; on Ctrl-C (SIGINT or
SIGTERM to the launcher) every worker gets SIGINT, then SIGKILL after `grace_seconds`.

This module does not import TensorFlow: the launcher starts in a moment.

Example:
    >>> import sys
    >>> from tfstiffness import local_cluster
    >>> local_cluster.run([sys.executable, "-c", "import os; assert os.environ['TF_CONFIG']"],
    ...                   workers=2, announce=False)
    0
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import IO

from tfstiffness import checks


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports free on 127.0.0.1 now (held open together while chosen)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_configs(ports: Sequence[int]) -> list[str]:
    """One `TF_CONFIG` per worker of a cluster on 127.0.0.1 `ports` (worker 0 is the chief).

    Example:
        >>> config = json.loads(tf_configs([2000, 2001])[1])
        >>> config["cluster"]["worker"], config["task"]
        (['127.0.0.1:2000', '127.0.0.1:2001'], {'type': 'worker', 'index': 1})
    """
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
            for i in range(len(ports))]


def run(command: Sequence[str], workers: int, *, output: IO[str] | None = None,
        grace_seconds: float = 10.0, announce: bool = True,
        env: dict[str, str] | None = None) -> int:
    """Runs `command` as `workers` local workers of one cluster and waits for them.

    Args:
        command: the program and its arguments, the same for every worker.
        workers: number of worker processes (>= 1).
        output: where the workers' prefixed output goes (default: stdout).
        grace_seconds: how long stopped workers get to exit after SIGINT before SIGKILL.
        announce: print each worker's pid and address first (`[launcher] ...` lines).
        env: the workers' environment (default: this one), plus their TF_CONFIG;
            TF_CPP_MIN_LOG_LEVEL defaults to 2 (TensorFlow's C++ warnings off).

    Returns:
        0 when every worker succeeded; otherwise the first failure's exit status (128 + the
        signal for a worker killed by a signal; 130 after Ctrl-C).
    """
    workers = checks.positive_int(workers, "workers")
    if not command:
        raise ValueError("command: expected a program and its arguments, got nothing.")
    output = sys.stdout if output is None else output
    lock = threading.Lock()
    ports = free_ports(workers)
    base = dict(os.environ if env is None else env)
    base.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    processes, relays = [], []
    stop = _StopRequest()
    try:
        for index, config in enumerate(tf_configs(ports)):
            # Own session: a terminal's Ctrl-C reaches the launcher only, which stops them.
            process = subprocess.Popen(list(command), env={**base, "TF_CONFIG": config},
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       start_new_session=True)
            processes.append(process)
            if announce:
                _write(output, lock, f"[launcher] worker {index}"
                       f"{' (chief)' if index == 0 else ''}: pid {process.pid}, "
                       f"127.0.0.1:{ports[index]}\n")
            relay = threading.Thread(target=_relay, daemon=True,
                                     args=(process.stdout, f"[worker {index}] ", output, lock))
            relay.start()
            relays.append(relay)
        status = _wait(processes, stop)
    except KeyboardInterrupt:
        status = 130
    finally:
        stop.restore()
        _stop(processes, grace_seconds)
        for relay in relays:
            relay.join(timeout=5)
    if status and announce:
        _write(output, lock, f"[launcher] stopped: exit status {status}\n")
    return status


class _StopRequest:
    """SIGTERM to the launcher is handled as Ctrl-C is, and Ctrl-C is handled even when the
    launcher inherited SIGINT ignored (a background job of a non-interactive shell): then its
    workers would inherit it ignored too, and be killed after the grace instead of stopping."""

    def __init__(self):
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = (signal.signal(signal.SIGTERM, self._raise),
                             signal.signal(signal.SIGINT, signal.default_int_handler))

    @staticmethod
    def _raise(signum, frame):
        raise KeyboardInterrupt

    def restore(self) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous[0])
            signal.signal(signal.SIGINT, self.previous[1])


def _wait(processes: list[subprocess.Popen], stop: _StopRequest) -> int:
    """0 once all succeeded, or the first failure's status (the others are still running)."""
    while True:
        codes = [p.poll() for p in processes]
        for code in codes:
            if code:
                return 128 - code if code < 0 else code
        if all(code == 0 for code in codes):
            return 0
        time.sleep(0.1)


def _stop(processes: list[subprocess.Popen], grace_seconds: float) -> None:
    """SIGINT to every running worker, SIGKILL to those still running after the grace."""
    running = [p for p in processes if p.poll() is None]
    for p in running:
        p.send_signal(signal.SIGINT)
    deadline = time.monotonic() + grace_seconds
    for p in running:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _relay(stream, prefix: str, output: IO[str], lock: threading.Lock) -> None:
    """Copies a worker's output, each line (or carriage-return segment) prefixed."""
    pending = ""
    for chunk in iter(lambda: stream.read1(4096), b""):
        pending += chunk.decode(errors="replace")
        *complete, pending = re.split(r"(?<=[\r\n])", pending)
        text = "".join(prefix + s if s.strip("\r\n") else s for s in complete)
        if text:
            _write(output, lock, text)
    if pending:
        _write(output, lock, prefix + pending + "\n")


def _write(output: IO[str], lock: threading.Lock, text: str) -> None:
    with lock:
        output.write(text)
        output.flush()
