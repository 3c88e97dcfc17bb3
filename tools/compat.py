"""Compatibility run: the default tests in a fresh virtual environment beside a given TensorFlow.

It does what a user with an existing TensorFlow does, on a fresh clone of the repository:

1. a new venv for the given Python (``--python``);
2. the user's TensorFlow first: ``pip install "tensorflow-cpu==2.16.*"`` (``--distribution``);
3. ``pip install -e ".[test]"`` from a fresh ``git clone`` of HEAD (committed work only, as CI
   sees it), then optionally keras-hub (``--hub``) with the tensorflow-text of the installed
   TensorFlow minor version;
4. a check that step 3 changed no TensorFlow distribution (name and version);
5. ``python -m pytest -q`` (the README's test command) in the clone, without PYTHONPATH.

With ``--tensorflow readme`` it runs the README's test command as written instead, in an empty
venv: ``pip install -e ".[tf,test,hub]"`` (TensorFlow through the extra), then the tests.

Usage::

    python tools/compat.py --tensorflow 2.16 --python python3.11
    python tools/compat.py --tensorflow readme --python python3.11
    python tools/compat.py --tensorflow 2.21 --python python3.13 --distribution tensorflow --hub
    python tools/compat.py --tensorflow 2.20 --python python3.12 -- tests/test_rules_conv.py

Each run prints one result line and appends it, as JSON, to ``--results``. Plain Python and
venv: no nox or tox to install. Exit status: 0 when the tests passed, 1 when they failed, 2 when
the environment could not be built or an install changed TensorFlow.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Every name TensorFlow is distributed under on PyPI; installing one next to another breaks
# `import tensorflow`, so the run checks them all.
TF_DISTRIBUTIONS = ("tensorflow", "tensorflow-cpu", "tensorflow-intel", "tensorflow-macos",
                    "tf-nightly", "tf-nightly-cpu")
WATCHED = TF_DISTRIBUTIONS + ("keras", "tensorboard", "tensorflow-text", "keras-hub", "protobuf")
# The README's test command, install part (also in .ci/run).
README_EXTRAS = ".[tf,test,hub]"


def _run(cmd, log, **kwargs):
    """Runs `cmd`, appending its output to the open file `log`; returns the exit status."""
    log.write(f"\n$ {' '.join(str(c) for c in cmd)}\n")
    log.flush()
    return subprocess.run(cmd, check=False, stdout=log, stderr=subprocess.STDOUT,
                          **kwargs).returncode


def _installed(python, env):
    """Returns {distribution name: version} of the watched distributions in the venv."""
    code = ("import importlib.metadata as m, json, sys\n"
            "out = {}\n"
            "for name in sys.argv[1:]:\n"
            "    try:\n"
            "        out[name] = m.version(name)\n"
            "    except m.PackageNotFoundError:\n"
            "        pass\n"
            "print(json.dumps(out))\n")
    out = subprocess.run([python, "-c", code, *WATCHED], capture_output=True, text=True,
                         env=env, check=True).stdout
    return json.loads(out)


def _tf_only(installed):
    return {k: v for k, v in installed.items() if k in TF_DISTRIBUTIONS}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tensorflow", required=True,
                        help="TensorFlow version to install first: 2.16 (latest patch) or "
                             "2.16.2; or `readme`: nothing first, the README's install")
    parser.add_argument("--python", default=sys.executable, help="Python interpreter for the venv")
    parser.add_argument("--distribution", default="tensorflow-cpu",
                        choices=("tensorflow-cpu", "tensorflow"),
                        help="which TensorFlow distribution the user already has")
    parser.add_argument("--hub", action="store_true",
                        help="also install keras-hub and the matching tensorflow-text (only "
                             "possible beside the `tensorflow` distribution)")
    parser.add_argument("--venv-root", default=os.environ.get("TFSTIFFNESS_VENVS", "/work/venvs"))
    parser.add_argument("--results", default=None,
                        help="JSON-lines file to append the result to "
                             "(default: <venv-root>/logs/results.jsonl)")
    parser.add_argument("--reuse", action="store_true",
                        help="keep an existing venv of the same name instead of rebuilding it")
    parser.add_argument("--install-only", action="store_true", help="build the venv, no tests")
    parser.add_argument("pytest_args", nargs="*", help="arguments for pytest (after --)")
    args = parser.parse_args(argv)

    readme = args.tensorflow == "readme"
    if not readme and not re.fullmatch(r"2\.\d+(\.\d+)?", args.tensorflow):
        parser.error(f"--tensorflow must be `readme` or look like 2.16 or 2.16.2, "
                     f"got {args.tensorflow!r}")
    pyver = subprocess.run([args.python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                           capture_output=True, text=True, check=True).stdout.strip()
    spec = args.tensorflow if args.tensorflow.count(".") == 2 else args.tensorflow + ".*"
    name = (f"readme-py{pyver}" if readme else
            f"{args.distribution}-{args.tensorflow}-py{pyver}" + ("-hub" if args.hub else ""))
    root = Path(args.venv_root)
    venv, logs = root / name, root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    log_path = logs / f"{name}-{stamp}.log"
    results = Path(args.results) if args.results else logs / "results.jsonl"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    python = str(venv / "bin" / "python")
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                            check=False, capture_output=True, text=True).stdout.strip()
    record = {"date": stamp, "commit": commit, "python": pyver,
              "distribution": args.distribution, "tensorflow_spec": spec, "hub": args.hub}
    print(f"[compat] {name}: log {log_path}", flush=True)
    start = time.monotonic()

    def finish(status, **extra):
        record.update(extra, status=status, minutes=round((time.monotonic() - start) / 60, 1))
        with open(results, "a") as f:
            f.write(json.dumps(record) + "\n")
        print(f"[compat] {name}: {status} {extra.get('summary', '')} "
              f"({record['minutes']} min) {record.get('installed', '')}", flush=True)
        return {"passed": 0, "failed": 1}.get(status, 2)

    with open(log_path, "w") as log, tempfile.TemporaryDirectory(prefix="tfs-compat-") as tmp:
        if venv.exists() and not args.reuse:
            shutil.rmtree(venv)
        if not venv.exists():
            if _run([args.python, "-m", "venv", str(venv)], log, env=env):
                return finish("error", summary="venv creation failed")
            # The user's TensorFlow, installed first, on its own.
            first = [python, "-m", "pip", "install", "-q", f"{args.distribution}=={spec}"]
            if not readme and _run(first, log, env=env):
                return finish("error", summary=f"{args.distribution}=={spec} did not install")
        before = _installed(python, env)
        clone = Path(tmp) / "tfstiffness"
        if _run(["git", "clone", "-q", str(REPO), str(clone)], log, env=env):
            return finish("error", summary="git clone failed")
        extras = README_EXTRAS if readme else ".[test]"
        if _run([python, "-m", "pip", "install", "-q", "-e", extras], log, env=env, cwd=clone):
            return finish("error", summary=f'pip install -e "{extras}" failed')
        if args.hub:
            tf_version = _tf_only(before).get("tensorflow")
            if tf_version is None:
                return finish("error", summary="--hub needs --distribution tensorflow: "
                                               "tensorflow-text requires that distribution")
            minor = ".".join(tf_version.split(".")[:2])
            # A constraint keeps pip from "solving" keras-hub by replacing TensorFlow.
            pin = Path(tmp) / "constraints.txt"
            pin.write_text(f"tensorflow=={tf_version}\n")
            if _run([python, "-m", "pip", "install", "-q", "-c", str(pin), "keras-hub",
                     f"tensorflow-text=={minor}.*"], log, env=env):
                return finish("error", summary=f"keras-hub beside tensorflow {tf_version} "
                                               "did not install")
        after = _installed(python, env)
        record["installed"] = after
        # pip does not check what is already installed: say what its install left broken.
        check = subprocess.run([python, "-m", "pip", "check"], capture_output=True, text=True,
                               env=env, check=False)
        record["pip_check"] = check.stdout.strip().splitlines()
        if not readme and _tf_only(before) != _tf_only(after):
            return finish("error", summary=f"the install changed TensorFlow: "
                                           f"{_tf_only(before)} -> {_tf_only(after)}")
        if args.install_only:
            return finish("installed")
        cmd = [python, "-m", "pytest", "-q", *args.pytest_args]
        code = _run(cmd, log, env=env, cwd=clone)
    tail = log_path.read_text().splitlines()[-40:]
    summary = next((line.strip("= ") for line in reversed(tail)
                    if re.search(r"\d+ (passed|failed|error)", line)), f"pytest exit {code}")
    return finish("passed" if code == 0 else "failed", summary=summary)


if __name__ == "__main__":
    sys.exit(main())
