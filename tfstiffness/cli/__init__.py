"""Command-line binaries (absl): flags in, one study call, files out; their shared conventions.

Each binary module (``tfstiffness.cli.<name>``) defines ONLY its own flags, in its own
`absl.flags.FlagValues` (``FLAGS``), with real default values, and a ``main(argv)`` that calls
one `tfstiffness.studies` function; ``run()`` hands both to `run_binary`, which gives every
binary the same behaviour:

- ``--help`` prints the binary's docstring (what it does, the optimizer, an example) and its
  own flags with their defaults; nothing else.
- Flag values are checked when parsed (types, ranges, choices): a bad one ends the run with
  one line naming the flag (exit status 2), before anything is loaded or written. The study
  then checks combinations, the output directory and the data, also before writing; its
  refusals (`studies.StudyInputError`, `run_directory.OutputDirError`, a busy directory,
  `run_directory.ConfigMismatchError`, `data.DatasetUnavailableError`) are one line too
  (exit status 1), never a traceback.
- TensorFlow's C++ start-up log (printed twice: TensorFlow loads two libraries that each
  carry their own logging) and its warnings are hidden unless ``--verbosity 1`` (see
  `quiet_tensorflow`).
- Ctrl-C (SIGINT) ends the run with ``interrupted: run the same command to resume`` and
  exit status 130; SIGTERM with ``terminated: run the same command to resume`` and 143
  (128 + the signal's number, as shells and job schedulers report it). The last checkpoint
  is intact either way.

A new binary needs a docstring, ``FLAGS = flags.FlagValues()`` with definitions (the shared
ones from `tfstiffness.cli._flags`), a ``main(argv)`` and ``def run(argv=None):
cli.run_binary(main, FLAGS, __doc__, argv)``.

Console scripts point at ``tfstiffness.cli.<name>:run``; ``python -m tfstiffness.cli.<name>``
and ``python experiments/<name>.py`` run the same binary.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
import textwrap
from collections.abc import Callable, Sequence
from typing import Any

from absl import app, flags

from tfstiffness import errors
from tfstiffness.errors import CommandError
from tfstiffness.outputs.atomic import DISK_FULL_ERRNOS

__all__ = ["CommandError", "help_text", "quiet_tensorflow", "run_binary", "study_binary"]

HELP_FLAGS = ("-h", "--help", "-help", "--helpshort", "--helpfull", "-?")
EXIT_USAGE = 2
EXIT_REFUSED = 1
EXIT_INTERRUPTED = 130


class _Interrupted(BaseException):
    """SIGTERM, turned into an exception like SIGINT's KeyboardInterrupt."""


def _prog(argv: Sequence[str]) -> str:
    name = os.path.basename(argv[0]) if argv else "tfstiffness"
    return name.removesuffix(".py")


def help_text(flag_values: flags.FlagValues, doc: str | None, prog: str = "") -> str:
    """The ``--help`` text: the docstring, then each flag with its default.

    Example:
        >>> fv = flags.FlagValues()
        >>> _ = flags.DEFINE_integer("epochs", 6, "Training epochs.", flag_values=fv)
        >>> print(help_text(fv, "Trains.", "demo"))
        usage: demo [flags]
        <BLANKLINE>
        Trains.
        <BLANKLINE>
        flags:
          --epochs
              Training epochs. (default: 6)
    """
    lines = [f"usage: {prog or 'binary'} [flags]", "", textwrap.dedent(doc or "").strip(), "",
             "flags:"]
    seen = set()
    for name in sorted(flag_values):
        flag = flag_values[name]
        if flag.name in seen:
            continue
        seen.add(flag.name)
        default = flag.default
        if isinstance(default, (list, tuple)):
            default = ",".join(str(v) for v in default)
        if flag.flag_type() == "bool":
            default = str(bool(default)).lower()
        shown = "none" if default is None or default == "" else default
        lines.append(f"  --{flag.name}" + (f", -{flag.short_name}" if flag.short_name else ""))
        lines.extend(textwrap.wrap(f"{flag.help} (default: {shown})", 98,
                                   initial_indent="      ", subsequent_indent="      "))
    return "\n".join(lines)


def quiet_tensorflow(show_log: bool = False) -> None:
    """Imports TensorFlow without its C++ start-up log, unless `show_log`.

    `TF_CPP_MIN_LOG_LEVEL` hides TensorFlow's later C++ info and warning lines (errors still
    show), but not the start-up lines: they are printed before TensorFlow's logging reads it,
    once by each of the two libraries `import tensorflow` loads, and device discovery then
    adds a ``cuInit`` error on a machine without a GPU. So the import and device discovery
    run with the process's standard error (file descriptor 2) sent to a temporary file, which
    is shown only if the import fails. TensorFlow's Python warnings are printed once (its own
    handler; not again through absl's). Does nothing once TensorFlow is imported.

    Args:
        show_log: Leave TensorFlow's logging as TensorFlow sets it (``--verbosity 1``).
    """
    if "tensorflow" in sys.modules:
        return
    if show_log:
        import tensorflow  # noqa: F401
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        failed = True
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # Device discovery logs too (cuInit).
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            if failed:  # Show what TensorFlow said: it explains the failure.
                captured.seek(0)
                sys.stderr.write(captured.read().decode(errors="replace"))
    # TensorFlow's Python warnings (e.g. retracing) still show, once: its own handler prints
    # them, and absl's handler on the root logger would repeat each.
    logging.getLogger("tensorflow").propagate = False


def _refusals() -> tuple[type[BaseException], ...]:
    """Errors that a binary reports as one line: bad input found before anything is written."""
    return (errors.CommandError, errors.StudyInputError, errors.OutputDirError,
            errors.ConfigMismatchError, errors.DatasetUnavailableError)


def run_binary(main: Callable[[list[str]], Any], flag_values: flags.FlagValues,
               doc: str | None, argv: Sequence[str] | None = None) -> None:
    """Runs a binary's `main` with the package's conventions (module docstring).

    Args:
        main: ``main(argv)``, called with the arguments left after the flags (the program
            name only, or a `CommandError` is raised for stray arguments).
        flag_values: The binary's own flags.
        doc: The binary's docstring, shown by ``--help``.
        argv: The command line (default `sys.argv`).

    Raises:
        SystemExit: always, with the exit status.
    """
    argv = list(sys.argv if argv is None else argv)
    prog = _prog(argv)

    def parse(args: list[str]) -> list[str]:
        if any(a in HELP_FLAGS for a in args[1:]):
            print(help_text(flag_values, doc, prog))
            sys.exit(0)
        flag_values.unparse_flags()  # Another run in this process starts from the defaults.
        try:
            rest = flag_values(args)
        except flags.Error as err:
            sys.stderr.write(f"{prog}: error: {err}\n(--help lists the flags)\n")
            sys.exit(EXIT_USAGE)
        if not flags.FLAGS.is_parsed():
            flags.FLAGS(args[:1])  # absl's own flags (logging): defaults.
        return rest

    def wrapped(rest: list[str]) -> int:
        if len(rest) > 1:
            sys.stderr.write(f"{prog}: error: unexpected arguments: {' '.join(rest[1:])}\n"
                             "(--help lists the flags)\n")
            return EXIT_USAGE
        verbosity = flag_values["verbosity"].value if "verbosity" in flag_values else 0
        previous = signal.signal(signal.SIGTERM, _raise_interrupted)
        try:
            quiet_tensorflow(show_log=verbosity >= 1)
            main(rest)
        except CommandError as err:
            sys.stderr.write(f"{prog}: error: {err}\n(--help lists the flags)\n")
            return EXIT_USAGE
        except KeyboardInterrupt:
            sys.stderr.write("\ninterrupted: run the same command to resume\n")
            return EXIT_INTERRUPTED
        except _Interrupted:
            sys.stderr.write("\nterminated: run the same command to resume\n")
            return 128 + signal.SIGTERM
        except Exception as err:
            if isinstance(err, _refusals()):
                sys.stderr.write(f"{prog}: error: {_refusal_message(err)}\n")
                return EXIT_REFUSED
            if isinstance(err, OSError) and err.errno in DISK_FULL_ERRNOS:
                sys.stderr.write(f"{prog}: error: {err.strerror}: could not write "
                                 f"{err.filename or 'a file'}. Free some space, then run the "
                                 "same command again: it resumes from the last checkpoint.\n")
                return EXIT_REFUSED
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)
        return 0

    app.run(wrapped, argv=argv, flags_parser=parse)


def study_binary(
    config_class: type,
    run_study: Callable[..., Any],
    binary: str,
    doc: str | None,
    *,
    define: Callable[[flags.FlagValues], None] | None = None,
    options: Callable[[flags.FlagValues], dict[str, Any]] | None = None,
) -> tuple[flags.FlagValues, Callable[[Sequence[str]], None], Callable[..., None]]:
    """A study's binary from its config class: its own flags, its ``main`` and its
    console-script ``run``.

    The flags are the config's (`_flags.define_config`) and those `define` adds; ``main``
    runs `run_study` with the config's arguments from the flags (`_flags.config_kwargs`)
    and the arguments `options` makes of the added flags (e.g. ``data_options``).

    Args:
        config_class: The study's config dataclass (`studies.config.StudyConfig`).
        run_study: The study's ``run_*`` function.
        binary: The binary's name (the default output directory is ``runs/<binary>``).
        doc: The binary's docstring, shown by ``--help``.
        define: Defines the binary's own flags beyond the config's.
        options: ``options(flag_values)`` -> more arguments of `run_study`; raises
            `CommandError` (or ValueError, reported the same way) for flags that do not go
            together.

    Returns:
        (flag values, ``main(argv)``, ``run(argv=None)``).
    """
    from tfstiffness.cli import _flags

    flag_values = flags.FlagValues()
    _flags.define_config(flag_values, config_class, binary)
    if define is not None:
        define(flag_values)

    def main(argv: Sequence[str]) -> None:
        """Runs the study with the flags' settings."""
        try:
            extra = {} if options is None else options(flag_values)
        except ValueError as err:
            raise CommandError(str(err)) from None
        run_study(**{**_flags.config_kwargs(flag_values, config_class), **extra})

    def run(argv: Sequence[str] | None = None) -> None:
        """Console-script entry point (console scripts call it without argv)."""
        run_binary(main, flag_values, doc, argv)

    return flag_values, main, run


def _refusal_message(err: BaseException) -> str:
    """The one line for a refusal; a missing data set in terms of the flags."""
    if type(err).__name__ == "DatasetUnavailableError" and getattr(err, "name", ""):
        name, root = err.name, err.data_dir
        return (f"data set {name!r} is not in --data_dir {root} and cannot be downloaded "
                f"({err.reason}). On a machine with network access run `tfds build {name}` "
                f"(it prepares ~/tensorflow_datasets/{name}), copy that folder to "
                f"{root}/{name}, then run this command again with --data_dir {root}.")
    return str(err)


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise _Interrupted()
