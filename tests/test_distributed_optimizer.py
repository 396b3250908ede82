"""LearnedOptimizer under ``tf.distribute``: the same training as on one device.

Each check runs in fresh processes (``tests/distributed_fit.py``): the two logical CPU
devices of ``MirroredStrategy`` and the ``TF_CONFIG`` of ``MultiWorkerMirroredStrategy``
must be configured before TensorFlow initialises.
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import REPO, subprocess_env

from l2l_tf.local_cluster import LocalCluster

SCRIPT = os.path.join(REPO, "tests", "distributed_fit.py")
SHIPPED_MNIST = os.path.join(REPO, "saved_optimizers", "mnist_lstm")

# After 8 steps the learned rule amplifies float rounding (gradients summed in another
# order over replicas) to ~1e-5 in the weights and ~5e-5 in its state; Adam stays at
# ~1e-7. The bug this guards against put replicas 0.1-1 apart (state: 3-6).
TOLERANCE = {"learned": 5e-4, "adam": 1e-6}


def _assert_close_to_single(values: dict, prefix: str, tolerance: float) -> int:
    compared = 0
    for key, value in values.items():
        if key.startswith(prefix + "/"):
            single = values["single/" + key.split("/", 1)[1]]
            np.testing.assert_allclose(value, single, atol=tolerance, err_msg=key)
            compared += 1
    return compared


@pytest.mark.parametrize("optimizer", ["learned", "adam"])
def test_mirrored_fit_matches_single_device_and_replicas_agree(optimizer, tmp_path):
    out = str(tmp_path / "values.npz")
    subprocess.run([sys.executable, SCRIPT, out, f"--optimizer={optimizer}", f"--rule={SHIPPED_MNIST}"],
                   check=True, env=subprocess_env(), timeout=300, capture_output=True)
    values = dict(np.load(out))
    # 4 weights + optimizer variables: learned: iterations, learning rate, 4 rule states.
    assert _assert_close_to_single(values, "replica0", TOLERANCE[optimizer]) >= 10
    for key in [k for k in values if k.startswith("replica0/")]:
        np.testing.assert_allclose(values[key], values["replica1/" + key.split("/", 1)[1]], atol=1e-7, err_msg=key)
    rule_states = [k for k in values if k.startswith("replica0/") and values[k].ndim == 2 and values[k].shape[1] == 80]
    assert optimizer == "adam" or len(rule_states) == 4


def test_multi_worker_training_matches_single_device_and_workers_agree(tmp_path):
    command = [sys.executable, SCRIPT, str(tmp_path), "--multi_worker", f"--rule={SHIPPED_MNIST}"]
    with LocalCluster(command, num_workers=2, log_dir=str(tmp_path / "logs"), env=subprocess_env()) as cluster:
        codes = cluster.wait(timeout=300)
        assert codes == [0, 0], cluster.logs_tail()
    workers = [dict(np.load(tmp_path / f"worker_{i}.npz")) for i in range(2)]
    assert _assert_close_to_single(workers[0], "worker", TOLERANCE["learned"]) == 10
    for key in workers[0]:
        np.testing.assert_allclose(workers[0][key], workers[1][key], atol=1e-7, err_msg=key)


REFUSED = textwrap.dedent("""
    import numpy as np, keras, tensorflow as tf
    from l2l_tf.local_cluster import free_ports
    from l2l_tf.optimizer import LearnedOptimizer

    def try_build(strategy):
        with strategy.scope():
            try:
                LearnedOptimizer.load({rule!r}).build([keras.Variable(np.zeros(3, np.float32))])
            except ValueError as error:
                print("REFUSED:", error)

    try_build(tf.distribute.experimental.CentralStorageStrategy())
    worker, ps, chief = free_ports(3)
    spec = tf.train.ClusterSpec({{"worker": [f"localhost:{{worker}}"], "ps": [f"localhost:{{ps}}"],
                                 "chief": [f"localhost:{{chief}}"]}})
    servers = [tf.distribute.Server(spec, job_name=job, task_index=0, start=True) for job in ("worker", "ps")]
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(spec, rpc_layer="grpc", task_type="chief", task_id=0)
    try_build(tf.distribute.experimental.ParameterServerStrategy(resolver))
""")


def test_unsupported_strategies_are_refused_at_build():
    result = subprocess.run([sys.executable, "-c", REFUSED.format(rule=SHIPPED_MNIST)], env=subprocess_env(), check=False,
                            timeout=300, capture_output=True, text=True)
    refused = [line for line in result.stdout.splitlines() if line.startswith("REFUSED:")]
    assert len(refused) == 2, result.stdout + result.stderr[-3000:]
    assert "does not support CentralStorageStrategy" in refused[0]
    assert "does not support ParameterServerStrategy" in refused[1]
    assert all("MirroredStrategy or MultiWorkerMirroredStrategy instead" in line for line in refused)
