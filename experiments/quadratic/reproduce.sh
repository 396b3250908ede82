#!/usr/bin/env bash
# Re-runs the shipped quadratic experiment: meta-train, evaluate, export. Run from the repo root.
set -euo pipefail
out=experiments/quadratic
python -m train.meta_train --problem=quadratic --save_path=$out/run --num_epochs=1000 \
  --log_every=50 --validation_every=50 --validation_runs=8 2>&1 | tee $out/meta_train.log
python -m train.evaluate --problem=quadratic --optimizer=$out/run --num_steps=100 \
  --num_seeds=100 --tuning_seeds=10 --output_dir=$out/eval100 2>&1 | tee $out/evaluate.log
python -m train.export --checkpoint=$out/run --export_dir=saved_optimizers/quadratic_lstm \
  --evaluation_json=$out/eval100/results.json
python -m train.report --optimizer_dir=saved_optimizers/quadratic_lstm --evaluation="Random 10-d quadratics, 100 steps (100 runs x 128 functions)=$out/eval100"
