"""Seconds per Gram matrix for each method, side by side in one run on the same weights and data.

    python benchmarks/gram_speed.py            # everything (about 10-20 minutes on 2 cores)
    python benchmarks/gram_speed.py --quick    # only the N = 500 FC net

Each method first runs once on one block (same batch_size), so every timing is steady state:
traced functions reused, as in a training loop that measures stiffness repeatedly; each
number is the best of 3 runs. "floor" is
one batched forward + backward pass of the summed loss over the same examples: no method that
needs the loss gradient can beat it by much.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras
import numpy as np
import tensorflow as tf

import tfstiffness as tfs
from benchmarks._measure import report, run_child, timed
from tfstiffness import models

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
BLOCK = 512
REPEATS = 3  # best of 3 for every method alike: single runs varied by up to 1.5x here


def case(name: str, n: int):
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    if name == "fc":
        model, x = models.fully_connected((28, 28, 1), 10), rng.random((n, 28, 28, 1))
        classes = 10
    elif name == "cnn":
        model, x = models.paper_cnn((32, 32, 3), 100), rng.normal(size=(n, 32, 32, 3))
        classes = 100
    elif name == "resnet20":
        model, x = models.resnet20v1((32, 32, 3), 10), rng.normal(size=(n, 32, 32, 3))
        classes = 10
    elif name == "transformer":
        model = models.transformer_classifier(vocab_size=2000, sequence_length=64,
                                              num_classes=2, embed_dim=64, num_heads=4,
                                              num_blocks=2)
        x = rng.integers(1, 2000, size=(n, 64))
        x[:, 48:] = 0  # padding tail
        classes = 2
    else:
        raise ValueError(name)
    x = x.astype("int32" if name == "transformer" else "float32")
    return model, x, rng.integers(0, classes, n)


def floor_seconds(model, x, y) -> float:
    @tf.function
    def step(xb, yb):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(LOSS(yb, model(xb, training=False)))
        return tape.gradient(loss, model.trainable_variables)

    def run():
        for s in range(0, len(x), BLOCK):
            [tf.convert_to_tensor(g).numpy() for g in step(x[s:s + BLOCK], y[s:s + BLOCK])]

    step(x[:BLOCK], y[:BLOCK])
    return timed(run, REPEATS)


def method_seconds(model, x, y, method: str) -> float:
    block = None if method == "ghost" else tfs.gram._default_block(model, method, len(x))
    warm = block or min(len(x), BLOCK)
    tfs.gradient_gram(model, x[:warm], y[:warm], loss=LOSS, method=method, batch_size=block)
    return timed(lambda: tfs.gradient_gram(model, x, y, loss=LOSS, method=method,
                                           batch_size=block, verbose=False), REPEATS)


def compare(name: str, n: int, methods) -> dict:
    model, x, y = case(name, n)
    row = {"case": name, "n": n, "floor": floor_seconds(model, x, y)}
    for method in methods:
        try:
            row[method] = method_seconds(model, x, y, method)
        except ValueError as err:  # vmap through attention is refused under oneDNN
            row[method] = None
            row[f"{method}_refused"] = str(err).split(";")[0]
    return row


def large(name: str, n: int) -> dict:
    """One cold ghost call at large N, run in its own process for an honest peak RSS."""
    model, x, y = case(name, n)
    model(x[:1])
    seconds = timed(lambda: tfs.gradient_gram(model, x, y, loss=LOSS, method="ghost",
                                              verbose=False))
    return {"case": name, "n": n, "ghost_cold": seconds}


def print_row(row: dict) -> None:
    parts = [f"{row['case']:<12} N={row['n']:<6} floor {row['floor']:.3f}s"]
    parts += [f"{m} {row[m]:.3f}s" if row[m] else f"{m} refused (oneDNN)"
              for m in ("ghost", "vmap", "jacobian")]
    ghost = row["ghost"]
    ratios = [f"ghost/floor {ghost / row['floor']:.2f}"]
    generic = {m: row[m] for m in ("vmap", "jacobian") if row[m]}
    if row["vmap"]:
        ratios.append(f"vmap/ghost {row['vmap'] / ghost:.1f}x")
    best = min(generic, key=generic.get)
    ratios.append(f"fastest generic ({best})/ghost {generic[best] / ghost:.1f}x")
    print("  ".join(parts) + "  |  " + ", ".join(ratios), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "N"))
    args = parser.parse_args()
    if args.child:
        report(large(args.child[0], int(args.child[1])))
        return
    print(f"tensorflow {tf.__version__}, keras {keras.__version__}, {os.cpu_count()} cpus, "
          f"oneDNN {'on' if tfs._generic._ONEDNN_ON else 'off'}")
    print_row(compare("fc", 500, ("ghost", "vmap", "jacobian")))
    if args.quick:
        return
    print_row(compare("cnn", 500, ("ghost", "vmap", "jacobian")))
    print_row(compare("transformer", 256, ("ghost", "vmap", "jacobian")))
    print_row(compare("resnet20", 256, ("ghost", "vmap", "jacobian")))
    for name in ("fc", "cnn"):
        result = run_child(__file__, "--child", name, "10000")
        print(f"{name:<12} N=10000 ghost (cold, incl. tracing) {result['ghost_cold']:.1f}s, "
              f"peak RSS {result['peak_rss_gb']:.2f} GB", flush=True)


if __name__ == "__main__":
    main()
