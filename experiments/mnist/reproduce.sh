#!/usr/bin/env bash
# Re-runs the shipped MNIST experiment: meta-train on the paper's MLP, evaluate it on the
# training problem (100 and 200 steps) and the generalisation variants, export, and make
# the report. Run from the repo root; data: the shared 10k-digit MNIST sample (IDX).
set -euo pipefail
out=experiments/mnist
data="--data_source=idx --data_dir=${MNIST_DIR:-../shared/data/mnist-10k}"
python -m train.meta_train --problem=mnist $data --save_path=$out/run --num_epochs=1500 \
  --log_every=20 --validation_every=40 --validation_runs=8 2>&1 | tee $out/meta_train.log
evaluate() {  # name problem steps
  python -m train.evaluate --problem=$2 $data --optimizer=$out/run --num_steps=$3 --num_seeds=30 \
    --tuning_seeds=5 --output_dir=$out/eval_$1 2>&1 | tee $out/eval_$1.log
}
evaluate mnist_100 mnist 100
evaluate mnist_200 mnist 200
evaluate mnist_40_100 mnist_40 100
evaluate mnist_2layer_100 mnist_2layer 100
evaluate mnist_relu_100 mnist_relu 100
python -m train.export --checkpoint=$out/run --export_dir=saved_optimizers/mnist_lstm \
  --evaluation_json=$out/eval_mnist_100/results.json
