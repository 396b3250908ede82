#!/usr/bin/env bash
# Re-runs the neural-art experiment (issue 16). Run from the repository root inside the venv.
# Data: ../shared/data/neural-art (or --data_dir=DIR / $L2L_NEURAL_ART_DIR); see l2l_tf/problems/neural_art.py
# for the split of photos and paintings.
set -euo pipefail
out=experiments/neural_art
# 1. Meta-training on ONE core (the other was in use), 64x64 crops of the nine training photos,
#    one style (Hokusai), 128-step runs, truncated BPTT with 32-step unrolls.
TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 taskset -c 1 python -m train.meta_train --problem=neural_art \
  --save_path=$out/run --num_epochs=600 --num_steps=128 --unroll_length=32 \
  --meta_objective=log_loss --momentum_decays=0.5,0.9,0.99 \
  --validation_every=25 --validation_runs=8 --checkpoint_every=5 --log_every=5 2>&1 | tee -a $out/meta_train.log
