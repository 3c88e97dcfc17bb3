"""Peak memory of gradient_gram on 2,000 examples of the paper's FC net, by batch_size.

    python benchmarks/gram_memory.py

Each setting runs in a fresh process; peak RSS includes TensorFlow itself (measured alone as
"baseline": import, build the model, one forward pass). The generic paths hold one block of
per-example gradients (batch_size x 575,910 floats) at a time once all of them (4.6 GB here)
exceed the factor cache, so their peak falls with batch_size; the ghost path never forms them.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._measure import report, run_child, timed

N = 2000


def child(method: str, batch_size: int) -> dict:
    import keras
    import numpy as np

    import tfstiffness as tfs
    from tfstiffness import models

    keras.utils.set_random_seed(0)
    model = models.fully_connected((28, 28, 1), 10)
    rng = np.random.default_rng(0)
    x, y = rng.random((N, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, N)
    model(x[:1])
    if method == "baseline":
        return {"seconds": 0.0}
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=None)
    seconds = timed(lambda: tfs.gradient_gram(model, x, y, loss=loss, method=method,
                                              batch_size=batch_size, verbose=False))
    return {"seconds": seconds}


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        report(child(sys.argv[2], int(sys.argv[3])))
        return
    base = run_child(__file__, "--child", "baseline", "0")
    print(f"FC 784-500-300-100-10, N={N}; baseline (TF + model) peak RSS "
          f"{base['peak_rss_gb']:.2f} GB")
    for method, sizes in (("vmap", (400, 200, 100, 50)), ("ghost", (1000, 250))):
        for batch_size in sizes:
            r = run_child(__file__, "--child", method, str(batch_size))
            print(f"{method:<6} batch_size={batch_size:<5} peak RSS {r['peak_rss_gb']:.2f} GB "
                  f"(+{r['peak_rss_gb'] - base['peak_rss_gb']:.2f} over baseline), "
                  f"{r['seconds']:.1f}s", flush=True)


if __name__ == "__main__":
    main()
