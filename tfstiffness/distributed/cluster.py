"""Running on a tf.distribute cluster: a strategy by name, the chief, and exchanges between
workers.

A cluster of several machines is described by `TF_CONFIG`, the standard tf.distribute
variable: every worker runs the same command with its own `TF_CONFIG`, which lists every
worker's address and says which one this is. The chief (task "chief", or worker 0 when there
is none) alone writes files. Workers exchange small arrays (checkpoint fingerprints, the
accumulated state of a summary) with `gather_workers`, one collective that every worker must
call in the same order.

Example:
    >>> from tfstiffness import cluster
    >>> strategy = cluster.make_strategy("none")  # None: no tf.distribute strategy
    >>> cluster.num_workers(strategy), cluster.is_chief(strategy)
    (1, True)
"""

from __future__ import annotations

import json
import os
import weakref
from typing import Any

import numpy as np
import tensorflow as tf

from tfstiffness.errors import WorkerLostError

STRATEGIES = ("none", "mirrored", "multi_worker", "tpu")
_GATHERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def make_strategy(name: str) -> tf.distribute.Strategy | None:
    """The strategy called `name`; create it before any other TensorFlow work.

    Args:
        name: "none" (no strategy: the default device), "mirrored" (every local GPU, or the
            CPU), "multi_worker" (MultiWorkerMirroredStrategy over the cluster in `TF_CONFIG`,
            every local GPU of every worker) or "tpu" (TPUStrategy on the TPU that
            `TPUClusterResolver` finds; not run in this project's tests).

    Returns:
        The strategy, or None for "none".

    Raises:
        ValueError: an unknown name, "multi_worker" without a valid `TF_CONFIG`, or "tpu"
            without a TPU.
    """
    if name not in STRATEGIES:
        raise ValueError(f"strategy: expected one of {STRATEGIES}, got {name!r}.")
    if name == "none":
        return None
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        config = tf_config()
        if config is None:
            raise ValueError(
                "strategy: 'multi_worker' needs TF_CONFIG, the cluster description (every "
                "worker's address and this worker's task); it is not set. On one machine use "
                "'mirrored', or `python -m tfstiffness.cli.summary_local_cluster` to start "
                "local workers with their TF_CONFIG.")
        _check_own_port(config)
        return tf.distribute.MultiWorkerMirroredStrategy()
    try:  # Not run in this project's tests: no TPU here.
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as err:
        raise ValueError(f"strategy: 'tpu' found no TPU to connect to ({type(err).__name__}: "
                         f"{err}). Run on a TPU VM, or set TPU_NAME to the TPU's name or "
                         "address.") from None
    return tf.distribute.TPUStrategy(resolver)


def tf_config(environ: dict[str, str] | None = None) -> dict[str, Any] | None:
    """`TF_CONFIG` parsed and checked, or None when it is unset or empty.

    Raises:
        ValueError: TF_CONFIG is not JSON, or lacks the cluster or this worker's task in it.

    Example:
        >>> config = tf_config({"TF_CONFIG": '{"cluster": {"worker": ["127.0.0.1:2000", '
        ...                     '"127.0.0.1:2001"]}, "task": {"type": "worker", "index": 1}}'})
        >>> config["task"]
        {'type': 'worker', 'index': 1}
    """
    raw = (os.environ if environ is None else environ).get("TF_CONFIG", "")
    if not raw.strip():
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"TF_CONFIG: not valid JSON ({err}): {raw!r}.") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not cluster:
        raise ValueError(f"TF_CONFIG: expected a 'cluster' of job name -> addresses, e.g. "
                         f'{{"worker": ["host1:2222", "host2:2222"]}}; got {raw!r}.')
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise ValueError(f"TF_CONFIG: expected a 'task' with 'type' and 'index' (this "
                         f"worker), e.g. {{\"type\": \"worker\", \"index\": 0}}; got {raw!r}.")
    addresses = cluster.get(task["type"])
    if not isinstance(addresses, list) or not (0 <= int(task["index"]) < len(addresses)):
        raise ValueError(f"TF_CONFIG: task {task['type']}:{task['index']} is not in the "
                         f"cluster {cluster}.")
    for job, members in cluster.items():
        for index, address in enumerate(members if isinstance(members, list) else [members]):
            host, _, port = str(address).rpartition(":")
            if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
                raise ValueError(f"TF_CONFIG: {job}:{index}'s address {address!r} is not "
                                 "host:port with a port number in 1-65535.")
    return config


def _check_own_port(config: dict[str, Any]) -> None:
    """Refuses, before TensorFlow starts its server, a port of this worker's that another
    process already listens on (TensorFlow would fail naming neither worker nor port)."""
    import socket

    task = config["task"]
    address = config["cluster"][task["type"]][int(task["index"])]
    port = int(str(address).rpartition(":")[2])
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no owner
        try:
            probe.bind(("", port))
        except OSError as err:
            raise ValueError(
                f"strategy: worker {task['type']}:{task['index']} cannot listen on {address}: "
                f"port {port} is taken ({err.strerror}). Stop what holds it, or give this "
                "worker another port in TF_CONFIG (every worker's TF_CONFIG lists it).") from None


def num_workers(strategy: tf.distribute.Strategy | None) -> int:
    """How many worker processes the strategy spans (1 for None and one-machine strategies)."""
    if strategy is None:
        return 1
    return strategy.num_replicas_in_sync // len(strategy.extended.worker_devices)


def is_chief(strategy: tf.distribute.Strategy | None) -> bool:
    """Whether this process is the one that writes checkpoints and outputs."""
    return strategy is None or bool(strategy.extended.should_checkpoint)


def gather_workers(strategy: tf.distribute.Strategy | None, vector: Any) -> np.ndarray:
    """Every worker's `vector`, as rows [workers, length] in the cluster's order (chief first).

    A collective: every worker must call it, in the same order, with vectors of one length.
    Float64 carries integers exactly up to 2**53.

    Raises:
        WorkerLostError: another worker stopped (killed, or failed with its own error) or
            restarted; the message says how to resume.
    """
    vector = np.asarray(vector, np.float64).reshape(1, -1)
    if num_workers(strategy) == 1:
        return vector
    local = len(strategy.extended.worker_devices)
    values = strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(vector))
    gather = _GATHERS.get(strategy)
    if gather is None:  # one graph per strategy (and vector length): eager gathers retrace
        gather = _GATHERS[strategy] = tf.function(lambda v: strategy.gather(v, axis=0))
    try:
        rows = gather(values).numpy()  # replica r lives on worker r // local
    except tf.errors.OpError as err:
        raise WorkerLostError(
            "another worker of the cluster stopped or restarted (its own output says why), "
            "so this one cannot go on. Run the same command again on every worker: the run "
            "resumes from the chief's last checkpoint. "
            f"({type(err).__name__}: {str(err).splitlines()[0]})") from None
    return rows[::local]
