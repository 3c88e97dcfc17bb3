"""A two-minute offline demo: train a small MLP on generated data, watch class stiffness change.

    python -m tfstiffness.demo

Prints, at initialisation and after each epoch, the within- and between-class cosine
stiffness on a fixed class-balanced probe set, then the final class stiffness matrix.
"""

from __future__ import annotations

import time

import numpy as np


def run_demo(epochs: int = 5, num_classes: int = 4, probe_per_class: int = 25,
             seed: int = 0, verbose: bool = True) -> dict:
    """Trains `toy_mlp` on Gaussian blobs; returns the stiffness measured at each epoch.

    Example:
        >>> from tfstiffness.demo import run_demo
        >>> result = run_demo(epochs=1, verbose=False)
        >>> sorted(result)
        ['between', 'class_matrix', 'epoch', 'train_loss', 'within']
    """
    import keras

    from tfstiffness import measures, models
    from tfstiffness.data import synthetic
    from tfstiffness.engine.gram import gradient_gram

    keras.utils.set_random_seed(seed)
    x, y = synthetic.gaussian_blobs(num_classes=num_classes, num_per_class=200, dim=20,
                                    seed=seed, spread=1.0)
    probe = np.concatenate([np.flatnonzero(y == c)[:probe_per_class] for c in range(num_classes)])
    model = models.toy_mlp(20, num_classes, widths=(64, 64))
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)

    history = {"epoch": [], "train_loss": [], "within": [], "between": []}
    start = time.monotonic()
    for epoch in range(epochs + 1):
        if epoch:
            fit = model.fit(x, y, batch_size=32, epochs=1, verbose=0)
            history["train_loss"].append(fit.history["loss"][-1])
        else:
            history["train_loss"].append(float(model.evaluate(x, y, verbose=0)))
        S = measures.stiffness_matrix(gradient_gram(model, x[probe], y[probe]), kind="cosine")
        C = measures.class_stiffness(S, y[probe], num_classes=num_classes)
        within, between = measures.within_between(C)
        for key, value in (("epoch", epoch), ("within", within), ("between", between)):
            history[key].append(value)
        if verbose:
            print(f"epoch {epoch}: train loss {history['train_loss'][-1]:.3f}  within-class "
                  f"stiffness {within:+.3f}  between-class {between:+.3f}  "
                  f"({time.monotonic() - start:.0f}s)", flush=True)
    if verbose:
        print("\nclass stiffness matrix (cosine), rows and columns are classes:")
        print(np.array2string(C, precision=3, suppress_small=True))
    return {**{k: np.asarray(v) for k, v in history.items()}, "class_matrix": C}


def main() -> None:
    """Runs the demo, with TensorFlow's start-up log hidden (as the binaries do)."""
    from tfstiffness.cli import quiet_tensorflow

    quiet_tensorflow()
    run_demo()


if __name__ == "__main__":
    main()
