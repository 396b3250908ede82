#!/usr/bin/env bash
# Re-runs the shipped MNIST experiment (see NOTES.md for how the shipped run was produced).
# Run from the repo root in the venv; data: the shared 10k-digit MNIST sample (IDX).
set -euo pipefail
out=experiments/mnist
data="--data_source=idx --data_dir=${MNIST_DIR:-../shared/data/mnist-10k}"
# Stage 1: the paper's setup (uniform meta-loss weights), until validation plateaued.
python -m train.meta_train --problem=mnist $data --save_path=$out/run --num_epochs=570 \
  --log_every=20 --validation_every=40 --validation_runs=8 2>&1 | tee $out/meta_train.stage1.log
# Stage 2: fine-tune with the meta-loss weighted towards the final steps, lower meta LR.
python -m train.meta_train --problem=mnist $data --save_path=$out/run_linear_lr2e-4 --init_from=$out/run \
  --meta_loss_weighting=linear --meta_learning_rate=2e-4 --num_epochs=600 \
  --log_every=20 --validation_every=40 --validation_runs=8 2>&1 | tee $out/meta_train.stage2b.log
# Stage 3: continue on 200-step runs.
python -m train.meta_train --problem=mnist $data --save_path=$out/run_linear_200 --init_from=$out/run_linear_lr2e-4 \
  --meta_loss_weighting=linear --meta_learning_rate=2e-4 --num_steps=200 --num_epochs=300 \
  --log_every=20 --validation_every=30 --validation_runs=8 2>&1 | tee $out/meta_train.stage3.log
# Choose among the stages on validation runs (never on evaluation runs).
python experiments/mnist/select_rule.py $out/run $out/run_linear_lr2e-4 $out/run_linear_200 | tee $out/selection.log
rule=$(tail -1 $out/selection.log | sed 's/^selected: //')
evaluate() {  # name problem steps
  python -m train.evaluate --problem=$2 $data --optimizer=$rule --num_steps=$3 --num_seeds=30 \
    --tuning_seeds=5 --output_dir=$out/eval_$1 2>&1 | tee $out/eval_$1.log
}
evaluate mnist_100 mnist 100
evaluate mnist_200 mnist 200
evaluate mnist_40_100 mnist_40 100
evaluate mnist_2layer_100 mnist_2layer 100
evaluate mnist_relu_100 mnist_relu 100
python -m train.export --checkpoint=$rule --export_dir=saved_optimizers/mnist_lstm \
  --evaluation_json=$out/eval_mnist_100/results.json
python -m train.report --optimizer_dir=saved_optimizers/mnist_lstm \
  --evaluation="MNIST MLP 784-20-10 sigmoid, 100 steps (the training problem)=$out/eval_mnist_100" \
  --evaluation="MNIST MLP, 200 steps=$out/eval_mnist_200" \
  --evaluation="Generalisation: 40 hidden units=$out/eval_mnist_40_100" \
  --evaluation="Generalisation: 2 hidden layers=$out/eval_mnist_2layer_100" \
  --evaluation="Generalisation: ReLU activations=$out/eval_mnist_relu_100"
