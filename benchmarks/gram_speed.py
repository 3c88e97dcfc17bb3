"""Seconds per Gram matrix for each method, side by side in one run on the same weights and data.

    python benchmarks/gram_speed.py                       # everything (about 30-60 minutes on 2 cores)
    python benchmarks/gram_speed.py --quick               # only the N = 500 FC net
    python benchmarks/gram_speed.py --cases mobilenet_v2,bert_tiny      # chosen cases
    python benchmarks/gram_speed.py --cases gpt2_tiny --n 32            # a quick check at small N

Cases: fc, cnn, transformer, resnet20 (this package's models), mobilenet_v2, efficientnet_b0
(keras.applications, 32x32x3, 10 classes, random weights), bert_tiny, gpt2_tiny (keras_hub
backbones from a small random configuration, sequence 64, with a Dense head on the pooled
features; they take dict inputs, as users would pass them), lstm (a masked bidirectional
LSTM text classifier), convnext_tiny (keras.applications ConvNeXtTiny at 32x32x3, N=64:
depthwise convolutions and LayerScale; jacobian is refused there).

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
from tfstiffness.engine import _generic
from tfstiffness.engine.run import default_block_size

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
BLOCK = 512
REPEATS = 3  # best of 3 for every method alike: single runs varied by up to 1.5x here


def _keras_hub_classifier(kind: str, n: int, rng):
    """A keras_hub backbone (small random configuration, as BERT-tiny's dimensions with a
    5,000-token vocabulary) with a Dense head on its pooled features; dict inputs."""
    import keras_hub

    config = {"vocabulary_size": 5000, "num_layers": 2, "num_heads": 2, "hidden_dim": 128,
              "intermediate_dim": 512, "max_sequence_length": SEQUENCE}
    backbone = (keras_hub.models.BertBackbone if kind == "bert" else
                keras_hub.models.GPT2Backbone)(**config)
    inputs = {name: keras.Input(t.shape[1:], dtype=t.dtype, name=name)
              for name, t in backbone.input.items()}
    features = backbone(inputs)
    pooled = features["pooled_output"] if isinstance(features, dict) else features[:, 0, :]
    model = keras.Model(inputs, keras.layers.Dense(2)(pooled))
    tokens = rng.integers(1, 5000, size=(n, SEQUENCE)).astype("int32")
    tokens[:, 3 * SEQUENCE // 4:] = 0  # padding tail
    x = {"token_ids": tokens, "padding_mask": (tokens != 0).astype("int32"),
         "segment_ids": np.zeros_like(tokens)}
    return model, {name: x[name] for name in backbone.input}, 2


def _lstm_classifier(n: int, rng):
    tokens = keras.Input((32,), dtype="int32")
    h = keras.layers.Embedding(2000, 32, mask_zero=True)(tokens)
    h = keras.layers.Bidirectional(keras.layers.LSTM(32, return_sequences=True))(h)
    h = keras.layers.LSTM(32)(h)
    x = rng.integers(1, 2000, size=(n, 32)).astype("int32")
    x[:, 24:] = 0
    return keras.Model(tokens, keras.layers.Dense(2)(h)), x, 2


SEQUENCE = 64
DEFAULT_N = {"fc": 500, "cnn": 500, "transformer": 256, "resnet20": 256, "mobilenet_v2": 256,
             "efficientnet_b0": 256, "bert_tiny": 256, "gpt2_tiny": 256, "lstm": 256,
             "convnext_tiny": 64}


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
    elif name in ("mobilenet_v2", "efficientnet_b0"):
        build = (keras.applications.MobileNetV2 if name == "mobilenet_v2" else
                 keras.applications.EfficientNetB0)
        model = build(input_shape=(32, 32, 3), weights=None, classes=10,
                      classifier_activation=None)
        x, classes = rng.normal(size=(n, 32, 32, 3)), 10
    elif name == "convnext_tiny":  # depthwise (grouped) convolutions and LayerScale
        model = keras.applications.ConvNeXtTiny(input_shape=(32, 32, 3), weights=None,
                                                classes=10, classifier_activation=None,
                                                include_preprocessing=False)
        x, classes = rng.normal(size=(n, 32, 32, 3)), 10
    elif name in ("bert_tiny", "gpt2_tiny"):
        model, x, classes = _keras_hub_classifier(name.split("_")[0], n, rng)
        return model, x, rng.integers(0, classes, n)
    elif name == "lstm":
        model, x, classes = _lstm_classifier(n, rng)
        return model, x, rng.integers(0, classes, n)
    else:
        raise ValueError(name)
    x = x.astype("int32" if name == "transformer" else "float32")
    return model, x, rng.integers(0, classes, n)


def _rows(x, start: int, stop: int):
    return tf.nest.map_structure(lambda a: a[start:stop], x)


def floor_seconds(model, x, y) -> float:
    @tf.function
    def step(xb, yb):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(LOSS(yb, model(xb, training=False)))
        return tape.gradient(loss, model.trainable_variables)

    def run():
        for s in range(0, len(y), BLOCK):
            [tf.convert_to_tensor(g).numpy() for g in step(_rows(x, s, s + BLOCK),
                                                           y[s:s + BLOCK])]

    step(_rows(x, 0, BLOCK), y[:BLOCK])
    return timed(run, REPEATS)


def method_seconds(model, x, y, method: str) -> float:
    block = None if method == "ghost" else default_block_size(model, method, len(y))
    warm = block or min(len(y), BLOCK)
    tfs.gradient_gram(model, _rows(x, 0, warm), y[:warm], loss=LOSS, method=method,
                      batch_size=block)
    return timed(lambda: tfs.gradient_gram(model, x, y, loss=LOSS, method=method,
                                           batch_size=block, verbose=False), REPEATS)


def compare(name: str, n: int, methods) -> dict:
    model, x, y = case(name, n)
    row = {"case": name, "n": n, "floor": floor_seconds(model, x, y)}
    row["fallback"] = len(tfs.gradient_gram(model, _rows(x, 0, 2), y[:2], loss=LOSS,
                                            method="ghost").fallback_layers)
    for method in methods:
        try:
            row[method] = method_seconds(model, x, y, method)
        except (ValueError, TypeError) as err:
            # vmap through attention is refused under oneDNN; through a recurrent layer,
            # TensorFlow's pfor fails (TypeError); dict inputs need multi-input support.
            row[method] = None
            row[f"{method}_refused"] = _reason(err)
    return row


def large(name: str, n: int) -> dict:
    """One cold ghost call at large N, run in its own process for an honest peak RSS."""
    model, x, y = case(name, n)
    model(x[:1])
    seconds = timed(lambda: tfs.gradient_gram(model, x, y, loss=LOSS, method="ghost",
                                              verbose=False))
    return {"case": name, "n": n, "ghost_cold": seconds}


def _reason(err: Exception) -> str:
    text = str(err)
    if "oneDNN" in text:
        return "oneDNN"
    if "variant" in text:
        return "pfor: RNN"
    if "grouped convolution" in text:
        return "grouped conv"
    if "multi-input" in text:
        return "dict inputs"
    return type(err).__name__


def print_row(row: dict) -> None:
    parts = [f"{row['case']:<15} N={row['n']:<6} floor {row['floor']:.3f}s"]
    parts += [f"{m} {row[m]:.3f}s" if row[m] else f"{m} refused ({row[f'{m}_refused']})"
              for m in ("ghost", "vmap", "jacobian")]
    ghost = row["ghost"]
    parts.append(f"fallback layers {row['fallback']}")
    ratios = [f"ghost/floor {ghost / row['floor']:.2f}"] if ghost else []
    generic = {m: row[m] for m in ("vmap", "jacobian") if row[m]}
    if row["vmap"] and ghost:
        ratios.append(f"vmap/ghost {row['vmap'] / ghost:.1f}x")
    if generic and ghost:
        best = min(generic, key=generic.get)
        ratios.append(f"fastest generic ({best})/ghost {generic[best] / ghost:.1f}x")
    print("  ".join(parts) + "  |  " + ", ".join(ratios), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="only the N = 500 FC net")
    parser.add_argument("--cases", help=f"comma-separated, from {','.join(DEFAULT_N)}")
    parser.add_argument("--n", type=int, help="examples per case (default: per case)")
    parser.add_argument("--child", nargs=2, metavar=("CASE", "N"))
    args = parser.parse_args()
    if args.child:
        report(large(args.child[0], int(args.child[1])))
        return
    names = ["fc"] if args.quick else args.cases.split(",") if args.cases else list(DEFAULT_N)
    unknown = sorted(set(names) - set(DEFAULT_N))
    if unknown:
        parser.error(f"--cases: unknown {unknown}; choose from {list(DEFAULT_N)}")
    print(f"tensorflow {tf.__version__}, keras {keras.__version__}, {os.cpu_count()} cpus, "
          f"oneDNN {'on' if _generic._ONEDNN_ON else 'off'}")
    for name in names:
        print_row(compare(name, args.n or DEFAULT_N[name], ("ghost", "vmap", "jacobian")))
    if args.quick or args.cases or args.n:
        return
    for name in ("fc", "cnn"):
        result = run_child(__file__, "--child", name, "10000")
        print(f"{name:<15} N=10000 ghost (cold, incl. tracing) {result['ghost_cold']:.1f}s, "
              f"peak RSS {result['peak_rss_gb']:.2f} GB", flush=True)


if __name__ == "__main__":
    main()
