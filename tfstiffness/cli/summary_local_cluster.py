"""Runs tfstiffness-summary as a MultiWorkerMirroredStrategy cluster on this machine.

Starts --workers processes of `python -m tfstiffness.cli.summary <the flags after -->`, each
with its own TF_CONFIG on free 127.0.0.1 ports (worker 0 is the chief and alone writes the
output directory), adds --strategy multi_worker, relays their output prefixed with
[worker i] and waits. When a worker fails, the others are stopped and the launcher exits with
its status; Ctrl-C stops them all. Run the same command again to resume from the chief's
checkpoint. On several machines, run tfstiffness-summary itself on each, with that machine's
TF_CONFIG (README: "Your own model from the command line").

Example:
  python -m tfstiffness.cli.summary_local_cluster --workers 2 -- \\
      --model my_model.keras --inputs data.npz --output_dir runs/summary_2workers
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from absl import flags

from tfstiffness import cli
from tfstiffness.distributed import local_cluster

FLAGS = flags.FlagValues()
flags.DEFINE_integer("workers", 2, "Worker processes to start.", lower_bound=1,
                     flag_values=FLAGS)
flags.DEFINE_string("module", "tfstiffness.cli.summary",
                    "The Python module every worker runs (python -m MODULE FLAGS...).",
                    flag_values=FLAGS)
flags.DEFINE_float("grace_seconds", 10.0, "Seconds stopped workers get to exit before "
                   "SIGKILL.", lower_bound=0.0, flag_values=FLAGS)


def worker_command(module: str, arguments: Sequence[str]) -> list[str]:
    """The command every worker runs; the summary binary gets ``--strategy multi_worker``.

    Raises:
        cli.CommandError: the summary's arguments ask for another strategy.

    Example:
        >>> worker_command("tfstiffness.cli.summary", ["--model", "m.keras"])[1:]
        ['-m', 'tfstiffness.cli.summary', '--model', 'm.keras', '--strategy=multi_worker']
    """
    arguments = list(arguments)
    if module == "tfstiffness.cli.summary":
        given = [a.split("=", 1)[1] for a in arguments if a.startswith("--strategy=")]
        given += [arguments[i + 1] for i, a in enumerate(arguments[:-1]) if a == "--strategy"]
        if any(value != "multi_worker" for value in given):
            raise cli.CommandError(f"--strategy {given[0]}: the local cluster runs the "
                                   "summary with --strategy multi_worker; drop the other "
                                   "--strategy")
        if not given:
            arguments.append("--strategy=multi_worker")
    return [sys.executable, "-m", module, *arguments]


def main(argv: Sequence[str]) -> int:
    """Starts the workers with the flags after `--`; returns the first failure's status."""
    return local_cluster.run(worker_command(FLAGS.module, argv[1:]), FLAGS.workers,
                             grace_seconds=FLAGS.grace_seconds)


def run(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point. Not `cli.run_binary`: the flags after `--` are the
    workers', and the launcher itself never imports TensorFlow."""
    argv = list(sys.argv if argv is None else argv)
    own = argv[:argv.index("--")] if "--" in argv else argv
    prog = "summary_local_cluster"
    if any(a in cli.HELP_FLAGS for a in own[1:]):
        print(cli.help_text(FLAGS, __doc__, prog))
        sys.exit(0)
    FLAGS.unparse_flags()
    try:
        rest = FLAGS(argv)
        status = main(rest)
    except (flags.Error, cli.CommandError) as err:
        hint = " (the workers' flags go after --)" if "Unknown command line flag" in str(
            err) else ""
        sys.stderr.write(f"{prog}: error: {err}{hint}\n(--help lists the flags)\n")
        sys.exit(cli.EXIT_USAGE)
    sys.exit(status)


if __name__ == "__main__":
    run()
