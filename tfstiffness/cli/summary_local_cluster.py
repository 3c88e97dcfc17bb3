"""Runs `tfstiffness-summary` as a MultiWorkerMirroredStrategy cluster on this machine.

Usage:
    python -m tfstiffness.cli.summary_local_cluster --workers 2 -- \\
        --model model.keras --inputs data.npz --output_dir runs/summary
    tfstiffness-summary-local-cluster --workers 2 -- --model model.keras --dataset mnist

Starts `--workers` processes of `python -m tfstiffness.cli.summary <arguments after -->`,
each with its own TF_CONFIG on free 127.0.0.1 ports (worker 0 is the chief and alone writes
the output directory), adds ``--strategy multi_worker``, relays their output prefixed with
``[worker i]`` and waits. When a worker fails the others are stopped and the launcher exits
with its status; Ctrl-C stops them all. Run the same command again to resume from the chief's
checkpoint. On several machines, run the summary itself on each with that machine's
TF_CONFIG instead (see docs/summary_binary.md).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from absl import app, flags

from tfstiffness import local_cluster

_OWN = ("workers", "module", "grace_seconds")
flags.DEFINE_integer("workers", 2, "Worker processes to start.", lower_bound=1)
flags.DEFINE_string("module", "tfstiffness.cli.summary",
                    "Python module each worker runs (python -m MODULE ARGS).")
flags.DEFINE_float("grace_seconds", 10.0, "Seconds stopped workers get before SIGKILL.",
                   lower_bound=0.0)

FLAGS = flags.FLAGS


def worker_command(module: str, arguments: Sequence[str]) -> list[str]:
    """The command every worker runs; the summary binary gets ``--strategy multi_worker``.

    Example:
        >>> worker_command("tfstiffness.cli.summary", ["--model", "m.keras"])[1:]
        ['-m', 'tfstiffness.cli.summary', '--model', 'm.keras', '--strategy=multi_worker']
    """
    arguments = list(arguments)
    if module == "tfstiffness.cli.summary":
        given = [a.split("=", 1)[1] for a in arguments if a.startswith("--strategy=")]
        given += [arguments[i + 1] for i, a in enumerate(arguments[:-1]) if a == "--strategy"]
        if any(value != "multi_worker" for value in given):
            raise app.UsageError(f"--strategy {given[0]}: the local cluster runs the summary "
                                 "with --strategy multi_worker; drop the other --strategy.")
        if not given:
            arguments.append("--strategy=multi_worker")
    return [sys.executable, "-m", module, *arguments]


def main(argv: Sequence[str]) -> int:
    """Starts the workers, relays their output, returns the first failure's status."""
    stray = [name for name in FLAGS if FLAGS[name].present and name not in _OWN]
    if stray:
        raise app.UsageError(f"--{', --'.join(stray)}: the workers' flags go after `--` "
                             "(summary_local_cluster --workers 2 -- --model ...).")
    return local_cluster.run(worker_command(FLAGS.module, argv[1:]), FLAGS.workers,
                             grace_seconds=FLAGS.grace_seconds)


def run() -> None:
    """Console-script entry point (console scripts call it without argv)."""
    app.run(main)


if __name__ == "__main__":
    run()
