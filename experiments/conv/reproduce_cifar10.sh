#!/usr/bin/env bash
# The conv experiment (issue 15) on CIFAR-10 itself, for a machine where TFDS can download it
# (not run here: this machine has no network). The same steps as reproduce.sh with the digits
# replaced by CIFAR-10 (`--problem=cifar10`, transfer to `cifar5` / `cifar2`: the first 5 / 2
# labels) and the data from TFDS. Run from the repository root with l2l_tf installed.
# Run the steps in order. The meta-training steps resume from their checkpoints when re-run; the
# evaluations re-run in full.
set -euo pipefail
out=${OUT:-runs/cifar10}
mkdir -p $out
data="--data_source=tfds"   # add --data_dir=DIR for TFDS's data_dir (also to select_rule.py below)
train="--num_steps=200 --unroll_length=20 --meta_loss_weighting=linear
  --momentum_decays=0.5,0.9,0.99 --validation_every=20 --validation_runs=8 --checkpoint_every=5 --log_every=5"

# 1. Separate conv/FC LSTMs on CIFAR-10, 100 runs (the digits rule's best was at run 60 of 100).
python -m train.meta_train --problem=cifar10 $data --save_path=$out/run_conv_fc --rule_set=conv_fc \
  --num_epochs=100 $train --meta_learning_rate=1e-3 --seed=0 > $out/meta_train.conv_fc.log 2>&1

# 2. Fine-tuning from its best rule at a lower meta learning rate on fresh runs (the digits: 85 runs,
#    the best at run 80).
python -m train.meta_train --problem=cifar10 $data --save_path=$out/run_conv_fc_ft --rule_set=conv_fc \
  --init_optimizer=$out/run_conv_fc --num_epochs=85 $train --meta_learning_rate=3e-4 --seed=1 > $out/meta_train.conv_fc_ft.log 2>&1

# 3. Selection on 30 validation runs (60 if within the noise: add --first_run=30 and average).
python experiments/mnist/select_rule.py --problem=cifar10 --data_source=tfds --criterion=mean_100_200 \
  $out/run_conv_fc_ft $out/run_conv_fc | tee $out/select_rule.log
selected=$(sed -n 's/^selected: //p' $out/select_rule.log)
python -m train.export --optimizer=$selected --export_dir=$out/conv_lstm_cifar10

# 4. Tuned baselines and the rule on each task at 200 and 100 steps (30 evaluation runs, 5 tuning runs).
eval_flags="$data --num_seeds=30 --tuning_seeds=5 --nojit_compile"
for task in cifar10 cifar5 cifar2; do
  python -m train.evaluate --problem=$task $eval_flags --num_steps=200 \
    --optimizer=$out/conv_lstm_cifar10 --name=conv_lstm --output_dir=$out/eval_${task}_200 > $out/eval_${task}_200.log 2>&1
  python -m train.evaluate --problem=$task $eval_flags --num_steps=100 --tuning_curves=$out/eval_${task}_200 \
    --optimizer=$out/conv_lstm_cifar10 --name=conv_lstm --output_dir=$out/eval_${task}_100 > $out/eval_${task}_100.log 2>&1
done

# 5. Stability: 1,000 steps on CIFAR-10, 30 runs, the rule alone.
python -m train.evaluate --problem=cifar10 $data --optimizer=$out/conv_lstm_cifar10 --name=conv_lstm --baselines= \
  --num_steps=1000 --num_seeds=30 --nojit_compile --output_dir=$out/stability_cifar10 > $out/stability_cifar10.log 2>&1
