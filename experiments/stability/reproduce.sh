#!/usr/bin/env bash
# Stability past the horizon (issue 15): every shipped rule run alone for 10x the number of steps
# of the runs it was meta-trained on (conv_lstm: 5x, the 1,000 steps), on 30 evaluation runs (seeds 0-29) of its own
# problem; summarize.py then counts the runs that diverge (NOTES.md gives the definition).
# Run from the repository root inside the venv.
set -euo pipefail
out=experiments/stability
mnist="--problem=mnist --data_source=idx --data_dir=${MNIST_DIR:-../shared/data/mnist-10k}"
run() {  # name, horizon x 10, problem flags
  TF_CPP_MIN_LOG_LEVEL=2 TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 python -m train.evaluate \
    --optimizer=saved_optimizers/$1 --name=$1 --baselines= --num_steps=$2 --num_seeds=30 ${@:3} \
    --output_dir=$out/$1 > $out/$1.log 2>&1
}
run quadratic_lstm 1000 --problem=quadratic
run mnist_lstm 2000 $mnist
run mnist_lstm_momentum 2000 $mnist
run neural_art_lstm 1280 --problem=neural_art --nojit_compile
# conv_lstm (issue 15): 1,000 steps, 5x its 200-step horizon (the bar for the conv rule;
# 10x is 2,000 steps, not run yet: about 0.9 core-hours for 30 runs on this CPU)
run conv_lstm 1000 --problem=mnist_conv --data_source=idx --data_dir=${MNIST_DIR:-../shared/data/mnist-10k} --nojit_compile
python experiments/stability/summarize.py $out/*/results.json | tee $out/summary.md
