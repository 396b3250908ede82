"""Meta-training throughput with 1 and 2 workers (MultiWorkerMirroredStrategy), side by side.

  python -m benchmarks.distributed_meta [--mnist_dir=../shared/data/mnist-10k] [--output=benchmarks/distributed_meta.json]

Runs ``train.meta_train --distribution=multi_worker`` on MNIST as a local cluster of 1 and
then 2 worker processes on loopback ports (``l2l_tf.local_cluster``), one worker per CPU
core (``--placement``: one TensorFlow thread per worker, or worker i pinned to core i),
alternating 1, 2, 1, 2 workers so that a change in
machine load shows up as a difference between repetitions. Each epoch is one 100-step run
per worker. Reported per configuration: optimizee steps/s summed over workers (the
chief's log, which counts every replica's steps; the first epoch, which compiles, is left
out; median of the rest) and the all-reduce's share of the step (the time spent in the
collective, including waiting for the slower worker, over compute + all-reduce + update).
The load average before each run is recorded: on a shared machine other processes take
cores from the workers and the figures are contended.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app, flags

from l2l_tf.local_cluster import LocalCluster

flags.DEFINE_string("mnist_dir", "../shared/data/mnist-10k", "Folder of the MNIST IDX files.")
flags.DEFINE_integer("epochs", 7, "Epochs per run (the first is left out of the rate).")
flags.DEFINE_integer("repeats", 2, "Times each worker count is run (alternating).")
flags.DEFINE_enum(
    "placement", "threads", ["threads", "pin"],
    "How a worker gets one core: threads = one intra-op and one inter-op TensorFlow thread per worker"
    " (the OS places workers on free cores); pin = worker i bound to core i (sched_setaffinity), which"
    " on a machine shared with other jobs ties a worker to a busy core.",
)
flags.DEFINE_string("output", "benchmarks/distributed_meta.json", "JSON output.")
FLAGS = flags.FLAGS

RATE = re.compile(
    r"(?:run|epoch(?: \(\d+ runs each\))?) (\d+)/\d+ .* ([\d.]+) optimizee steps/s .* all-reduce ([\d.]+)% of the step"
)


def watch_cpu_seconds(processes: list[subprocess.Popen]) -> list[float]:
    """Polls the processes until they exit; the CPU seconds (user + system) each one used."""
    last = [0.0] * len(processes)
    while any(process.poll() is None for process in processes):
        for index, process in enumerate(processes):
            try:
                with open(f"/proc/{process.pid}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                last[index] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            except (OSError, IndexError, ValueError):
                pass  # exited between poll() and the read
        time.sleep(0.5)
    return last


def _command(save_path: str) -> list[str]:
    return [
        sys.executable, "-m", "train.meta_train", "--problem=mnist", "--data_source=idx",
        f"--data_dir={FLAGS.mnist_dir}", f"--save_path={save_path}", "--distribution=multi_worker",
        f"--num_epochs={FLAGS.epochs}", "--num_steps=100", "--unroll_length=20", "--log_every=1",
        "--validation_every=1000", "--validation_runs=1", "--checkpoint_every=1000",
    ]


def _epoch_rates(log_path: str) -> list[tuple[float, float]]:
    """(steps/s, all-reduce share) of every logged epoch but the first (which compiles)."""
    with open(log_path) as log:
        text = log.read()
    epochs = [(int(e), float(rate), float(share) / 100) for e, rate, share in RATE.findall(text)]
    return [(rate, share) for epoch, rate, share in epochs if epoch > 1]


def run_jobs(workers: int, jobs: int, repeat: int, work_dir: str) -> dict:
    """``jobs`` independent meta-training jobs of ``workers`` workers each, started together.

    ``jobs=1`` is the scaling measurement; ``workers=1, jobs=2`` is its ceiling on this
    machine: two single-process jobs that never communicate, one per core, so whatever
    they lose against one job alone is lost to the shared hardware, not to tf.distribute.
    """
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    cores = sorted(os.sched_getaffinity(0))
    if FLAGS.placement == "threads":
        env.update(TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
    clusters, logs = [], []
    for job in range(jobs):
        name = f"{workers}x{jobs}_{repeat}_{job}"
        save_path, log_dir = os.path.join(work_dir, f"run_{name}"), os.path.join(work_dir, f"logs_{name}")
        first_core = job * workers
        cpus = [[cores[(first_core + i) % len(cores)]] for i in range(workers)] if FLAGS.placement == "pin" else None
        clusters.append(LocalCluster(_command(save_path), workers, log_dir, env=env, cpus=cpus))
        logs.append(os.path.join(log_dir, "worker_0.log"))
    load, start = os.getloadavg(), time.time()
    for cluster in clusters:
        cluster.start()
    try:
        cpu_seconds = watch_cpu_seconds([process for cluster in clusters for process in cluster.processes])
        for cluster in clusters:
            codes = cluster.wait(timeout=600)
            if codes != [0] * workers:
                raise RuntimeError(f"workers failed ({codes}): {cluster.logs_tail()}")
    finally:
        for cluster in clusters:
            cluster.kill()
    seconds = time.time() - start
    per_job = [_epoch_rates(log) for log in logs]
    rates = [statistics.median(rate for rate, _ in timed) for timed in per_job]
    return {
        "workers": workers,
        "independent_jobs": jobs,
        "seconds": round(seconds, 1),
        # CPU time each worker got over its whole run (start-up included), in cores: on an
        # idle machine close to 1 per worker; far below 1 when other jobs take the cores.
        "cores_used_per_worker": [round(cpu / seconds, 2) for cpu in cpu_seconds],
        "load_average_1_5_15min_before": [round(x, 2) for x in load],
        "steps_per_second_per_epoch": [[rate for rate, _ in timed] for timed in per_job],
        "steps_per_second": sum(rates),
        "all_reduce_share": statistics.median(share for timed in per_job for _, share in timed),
    }


CONFIGURATIONS = ((1, 1), (2, 1), (1, 2))  # (workers per job, independent jobs)


def _label(workers: int, jobs: int) -> str:
    return f"{workers} worker{'s' if workers > 1 else ''}" if jobs == 1 else f"{jobs} independent 1-worker jobs"


def main(argv: list[str]) -> None:
    del argv
    work_dir = tempfile.mkdtemp(prefix="l2l_bench_workers_")
    try:
        runs = [run_jobs(workers, jobs, repeat, work_dir)
                for repeat in range(FLAGS.repeats) for workers, jobs in CONFIGURATIONS]
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    table = {}
    for workers, jobs in CONFIGURATIONS:
        mine = [run for run in runs if (run["workers"], run["independent_jobs"]) == (workers, jobs)]
        table[_label(workers, jobs)] = {
            "steps_per_second": statistics.median(run["steps_per_second"] for run in mine),
            "all_reduce_share": statistics.median(run["all_reduce_share"] for run in mine),
        }
    one = table[_label(1, 1)]["steps_per_second"]
    speedup = table[_label(2, 1)]["steps_per_second"] / one
    ceiling = table[_label(1, 2)]["steps_per_second"] / one
    result = {
        "what": "MNIST meta-training (784-20-10 MLP, 100-step runs, 20-step unrolls), MultiWorkerMirroredStrategy,"
                " one worker per core; optimizee steps/s summed over workers (and over jobs for the independent"
                " pair, which never communicates: the machine's ceiling for two workers)",
        "cpu_cores": len(os.sched_getaffinity(0)),
        "placement": FLAGS.placement,
        "runs_in_order": runs,
        "summary": table,
        "speedup_2_vs_1_workers": speedup,
        "speedup_2_independent_jobs_vs_1": ceiling,
        "scaling_efficiency_vs_independent_jobs": speedup / ceiling,
    }
    with open(FLAGS.output, "w") as f:
        json.dump(result, f, indent=1)
    print("| configuration | optimizee steps/s (sum) | all-reduce share of a step | cores used per worker | load avg before (1 min) |")
    print("| --- | --- | --- | --- | --- |")
    for run in runs:
        print(f"| {_label(run['workers'], run['independent_jobs'])} | {run['steps_per_second']:.1f}"
              f" | {run['all_reduce_share']:.1%} | {run['cores_used_per_worker']} | {run['load_average_1_5_15min_before'][0]} |")
    print(f"speed-up 2 vs 1 workers (medians): {speedup:.2f}x; two independent jobs vs one (the machine's"
          f" ceiling): {ceiling:.2f}x; efficiency {speedup / ceiling:.0%}; written to {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
