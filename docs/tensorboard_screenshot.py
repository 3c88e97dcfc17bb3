"""Screenshots of TensorBoard showing what `StiffnessCallback` logs, for the README.

Trains a small fully-connected network on synthetic images with a class hierarchy (12 classes in
4 super-classes) for a few epochs, with `keras.callbacks.TensorBoard` and `StiffnessCallback`
logging into one temporary directory; starts TensorBoard on 127.0.0.1; waits until it has
loaded the stiffness run; and captures the Scalars and Images dashboards with headless
Chromium into `docs/images/tensorboard_scalars.png` and `docs/images/tensorboard_images.png`.

Needs Chromium: `apt-get install -y chromium` (Debian) if `/usr/bin/chromium` is missing.

Usage:
    python docs/tensorboard_screenshot.py [--epochs 8] [--out-dir docs/images] [--keep-logs]

Example:
    >>> sorted(pages("http://127.0.0.1:6006"))  # the screenshots it writes
    ['tensorboard_images.png', 'tensorboard_scalars.png']
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def hierarchical_data(num_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, fine_to_coarse): 8x8 images, 4 super-classes of 3 classes each."""
    try:
        from tfstiffness.data import synthetic
    except ImportError:  # an older checkout: the same idea in a few lines of NumPy
        rng = np.random.default_rng(seed)
        fine_to_coarse = np.repeat(np.arange(4), 3)
        means = rng.normal(size=(4, 64))[fine_to_coarse] + 0.5 * rng.normal(size=(12, 64))
        y = rng.permutation(np.repeat(np.arange(12), num_per_class))
        x = means[y] + rng.normal(size=(len(y), 64))
        return x.reshape(-1, 8, 8, 1).astype(np.float32), y, fine_to_coarse
    x, y, _ = synthetic.hierarchical_images(num_per_class, num_superclasses=4,
                                            classes_per_superclass=3, image_shape=(8, 8, 1),
                                            seed=seed)
    return x, y, synthetic.hierarchical_fine_to_coarse(4, 3)


def class_balanced_split(y: np.ndarray, *sizes: int) -> list[np.ndarray]:
    """Index arrays: `sizes[k]` examples of every class for part k, the rest in a last part."""
    parts: list[list[np.ndarray]] = [[] for _ in range(len(sizes) + 1)]
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        bounds = np.cumsum((0, *sizes))
        for k in range(len(sizes)):
            parts[k].append(members[bounds[k]:bounds[k + 1]])
        parts[-1].append(members[bounds[-1]:])
    return [np.sort(np.concatenate(p)) for p in parts]


def write_logs(log_dir: Path, epochs: int) -> object:
    """Trains the model with Keras' TensorBoard callback and StiffnessCallback into log_dir.

    Returns:
        The StiffnessCallback, with its history.
    """
    # Imported here, after main() quietened TensorFlow's start-up logging.
    import keras

    from tfstiffness.callback import StiffnessCallback

    keras.utils.set_random_seed(0)
    x, y, fine_to_coarse = hierarchical_data(116, seed=0)
    # Probe and val probe: 8 examples of each class, held out of training.
    probe, val, train = class_balanced_split(y, 8, 8)
    model = keras.Sequential([
        keras.Input(x.shape[1:]), keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"), keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(len(fine_to_coarse)),
    ])
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    stiffness = StiffnessCallback(x[probe], y[probe], val_x=x[val], val_y=y[val],
                                  log_dir=log_dir, fine_to_coarse=fine_to_coarse, by_layer=True)
    model.fit(x[train], y[train], epochs=epochs, batch_size=32,
              validation_data=(x[val], y[val]), verbose=2,
              callbacks=[keras.callbacks.TensorBoard(log_dir=str(log_dir)), stiffness])
    return stiffness


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


@contextlib.contextmanager
def tensorboard(log_dir: Path, timeout: float = 120.0) -> Iterator[str]:
    """Serves log_dir on 127.0.0.1 and yields the base URL once the stiffness run is loaded."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(log_dir),
         "--host", "127.0.0.1", "--port", str(port), "--reload_interval", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"TensorBoard exited early:\n{process.stderr.read()}")
            try:
                scalars = _get_json(f"{url}/data/plugin/scalars/tags")
                images = _get_json(f"{url}/data/plugin/images/tags")
                if scalars.get("stiffness") and images.get("stiffness"):
                    break
            except (OSError, ValueError):
                pass  # not listening yet, or the plugin is still loading
            if time.monotonic() > deadline:
                raise TimeoutError(f"TensorBoard did not load the stiffness run in {timeout} s")
            time.sleep(1.0)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def chromium() -> str:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    raise FileNotFoundError("no Chromium found: apt-get update && apt-get install -y chromium")


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe (no extra packages).

    `--screenshot` alone cannot change TensorBoard's settings that live in the page's
    localStorage (e.g. "Ignore outliers in chart scaling", on by default, which clips the
    untrained point off the stiffness charts); the DevTools protocol can, then navigates and
    captures the page.
    """

    def __init__(self, size: tuple[int, int] = (1400, 1000)):
        self._profile = tempfile.TemporaryDirectory()
        # Chromium reads commands on fd 3 and writes replies on fd 4. Park the pipe ends above
        # fd 10 so that moving them onto 3 and 4 cannot clobber one another.
        to_browser_r, self._to_browser = _high_fd_pipe()
        self._from_browser, from_browser_w = _high_fd_pipe()

        # A fresh profile and no background traffic: TensorBoard on localhost is all it needs.
        command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                   "--no-first-run", "--disable-background-networking",
                   "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                   "--remote-debugging-pipe", f"--user-data-dir={self._profile.name}",
                   f"--window-size={size[0]},{size[1]}", "about:blank"]
        # bash moves the pipe ends onto fds 3 and 4 as it execs Chromium (no preexec_fn,
        # which is unsafe once TensorFlow's threads run in this process).
        wrapper = f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w}'
        self.process = subprocess.Popen(["bash", "-c", wrapper, *command],
                                        pass_fds=(to_browser_r, from_browser_w),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer, self._next_id, self._events = b"", 0, []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target,
                                 flatten=True)["sessionId"]
        self.call("Page.enable", session=True)
        self.resize(*size)

    def resize(self, width: int, height: int) -> None:
        """Sets the viewport (and so the screenshot) size in CSS pixels."""
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width,
                  height=height, deviceScaleFactor=1, mobile=False)

    def call(self, method: str, session: bool = False, **params) -> dict:
        """Sends one command and returns its result (events that arrive meanwhile are kept)."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._events.append(reply)

    def _read(self, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError(f"no message from Chromium in {timeout} s")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def open(self, url: str, timeout: float = 60.0) -> None:
        """Loads url afresh (a full load, even when only the #fragment differs)."""
        for target in ("about:blank", url):
            self._events = [e for e in self._events if e.get("method") != "Page.loadEventFired"]
            self.call("Page.navigate", session=True, url=target)
            deadline = time.monotonic() + timeout
            while not any(e.get("method") == "Page.loadEventFired" for e in self._events):
                self._events.append(self._read(max(0.0, deadline - time.monotonic())))

    def evaluate(self, expression: str) -> object:
        result = self.call("Runtime.evaluate", session=True, expression=expression,
                           returnByValue=True)
        return result.get("result", {}).get("value")

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", session=True, format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call("Browser.close")
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)
        self._profile.cleanup()


def _high_fd_pipe() -> tuple[int, int]:
    read, write = os.pipe()
    high = (fcntl.fcntl(read, fcntl.F_DUPFD, 10), fcntl.fcntl(write, fcntl.F_DUPFD, 10))
    os.close(read)
    os.close(write)
    return high


# Ticks the Images dashboard's "Show actual image size" box (a plain Polymer property, not kept
# in the URL or localStorage): finds the dashboard through the shadow roots and sets it.
ACTUAL_IMAGE_SIZE_JS = """(() => {
  const find = (root) => {
    for (const el of root.querySelectorAll("*")) {
      if (el.localName === "tf-image-dashboard") return el;
      const inner = el.shadowRoot && find(el.shadowRoot);
      if (inner) return inner;
    }
    return null;
  };
  const dashboard = find(document);
  if (dashboard) dashboard._actualSize = true;
  return Boolean(dashboard);
})()"""


def pages(url: str) -> dict[str, tuple[str, tuple[int, int], str | None]]:
    """Screenshot file name -> (dashboard URL, viewport size, JavaScript to run once drawn).

    The legacy Scalars and Images dashboards take a tag filter (a regex) in the URL fragment.
    """
    scalars = ("(train_train|train_val)/cosine/(within|between|xi_crossing|xi_linear_fit|"
               "superclass_contrast)$")
    return {
        "tensorboard_scalars.png": (
            f"{url}/#scalars&_smoothingWeight=0&tagFilter={urllib.parse.quote(scalars, safe='')}",
            (1400, 1000), None),
        # Wide enough for the two images of train-train cosine stiffness side by side.
        "tensorboard_images.png": (
            f"{url}/#images&tagFilter={urllib.parse.quote('train_train/cosine/', safe='')}",
            (1750, 780), ACTUAL_IMAGE_SIZE_JS),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--out-dir", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--settle", type=float, default=10.0,
                        help="seconds to let each dashboard fetch and draw before capturing")
    parser.add_argument("--keep-logs", action="store_true", help="keep the log directory")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Run from a checkout without installing: the package is one directory up.
    sys.path.insert(0, str(ROOT))

    log_dir = Path(tempfile.mkdtemp(prefix="tfstiffness_tb_"))
    try:
        write_logs(log_dir, args.epochs)
        with tensorboard(log_dir) as url:
            browser = Chromium()
            try:
                # TensorBoard's chart settings live in the page's localStorage: show every
                # point (no outlier clipping) and no smoothing, then load each dashboard.
                browser.open(f"{url}/")
                browser.evaluate("localStorage.setItem('_ignoreYOutliers', 'false')")
                for name, (page, size, script) in pages(url).items():
                    browser.resize(*size)
                    browser.open(page)
                    time.sleep(args.settle)  # the dashboards fetch and draw after loading
                    if script is not None:
                        if not browser.evaluate(script):
                            raise RuntimeError(f"{name}: the page script found nothing to set")
                        time.sleep(2.0)
                    browser.screenshot(args.out_dir / name)
                    print(f"wrote {args.out_dir / name}")
            finally:
                browser.close()
    finally:
        if args.keep_logs:
            print(f"logs kept in {log_dir}")
        else:
            shutil.rmtree(log_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
