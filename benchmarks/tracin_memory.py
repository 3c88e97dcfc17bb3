"""Time and peak memory of `tfs.tracin(..., top_k=10)` over checkpoints of the paper's CNN.

    python benchmarks/tracin_memory.py                      # 20,000 x 100, 5 checkpoints
    python benchmarks/tracin_memory.py --n_train 2000 --n_test 20 --checkpoints 2   # quick

Random 32x32x3 images and labels; each checkpoint is `models.paper_cnn((32, 32, 3), 10)`
initialised with its own seed. Each measurement runs in a fresh process; peak RSS (VmHWM)
includes TensorFlow, the models and the data, measured alone as "baseline". For scale, the
same process shape also times one cross `gradient_gram` (training x test) of one checkpoint:
TracIn over T checkpoints costs about T of those, plus folding the scores into the top-k.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._measure import report, run_child, timed


def child(mode: str, n_train: int, n_test: int, checkpoints: int, top_k: int,
          block_size: int | None) -> dict:
    import keras
    import numpy as np

    import tfstiffness as tfs
    from tfstiffness import models

    rng = np.random.default_rng(0)
    x = rng.normal(size=(n_train, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, n_train)
    x_test = rng.normal(size=(n_test, 32, 32, 3)).astype(np.float32)
    y_test = rng.integers(0, 10, n_test)
    cnns = []
    for seed in range(checkpoints):
        keras.utils.set_random_seed(seed)
        cnns.append(models.paper_cnn((32, 32, 3), 10))
        cnns[-1](x[:1])
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    if mode == "baseline":
        return {"seconds": 0.0}
    if mode == "gram":
        seconds = timed(lambda: tfs.gradient_gram(cnns[0], x, y, loss=loss, x2=x_test,
                                                  y2=y_test, batch_size=block_size,
                                                  verbose=False))
        return {"seconds": seconds}
    out = {}

    def run():
        out["result"] = tfs.tracin(cnns, x, y, x_test, y_test, loss=loss,
                                   learning_rates=[0.01] * checkpoints, top_k=top_k,
                                   block_size=block_size, verbose=False)

    seconds = timed(run)
    result = out["result"]
    return {"seconds": seconds, "method": result.method,
            "proponents_shape": list(result.proponents.shape)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n_train", type=int, default=20000)
    parser.add_argument("--n_test", type=int, default=100)
    parser.add_argument("--checkpoints", type=int, default=5)
    parser.add_argument("--top_k", type=int, default=10)
    parser.add_argument("--block_size", type=int, default=0, help="0: the engine's default")
    parser.add_argument("--child", choices=("baseline", "gram", "tracin"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [str(args.n_train), str(args.n_test), str(args.checkpoints), str(args.top_k),
             str(args.block_size)]
    if args.child:
        report(child(args.child, args.n_train, args.n_test, args.checkpoints, args.top_k,
                     args.block_size or None))
        return
    flags = ["--n_train", sizes[0], "--n_test", sizes[1], "--checkpoints", sizes[2],
             "--top_k", sizes[3], "--block_size", sizes[4]]
    print(f"paper CNN 32x32x3 -> 10 (19,466 parameters); {args.n_train} training x "
          f"{args.n_test} test examples, {args.checkpoints} checkpoints, top_k={args.top_k}",
          flush=True)
    base = run_child(__file__, *flags, "--child", "baseline")
    print(f"baseline (TF, models, data): peak RSS {base['peak_rss_gb']:.2f} GB", flush=True)
    gram = run_child(__file__, *flags, "--child", "gram")
    print(f"one cross gradient_gram ({args.n_train} x {args.n_test}, one checkpoint): "
          f"{gram['seconds']:.1f}s, peak RSS {gram['peak_rss_gb']:.2f} GB", flush=True)
    r = run_child(__file__, *flags, "--child", "tracin")
    print(f"tracin top_k={args.top_k} ({r['method']}): {r['seconds']:.1f}s "
          f"= {r['seconds'] / max(gram['seconds'], 1e-9):.2f} x one gradient_gram "
          f"({args.checkpoints} checkpoints), peak RSS {r['peak_rss_gb']:.2f} GB "
          f"(+{r['peak_rss_gb'] - base['peak_rss_gb']:.2f} over baseline); an [N, M] float64 "
          f"matrix would be {args.n_train * args.n_test * 8 / 2**30:.3f} GB", flush=True)


if __name__ == "__main__":
    main()
