#!/usr/bin/env bash
# What a new user does after a real (non-editable) install, from a folder outside the repository:
#   python -m venv VENV && VENV/bin/pip install CHECKOUT
#   mkdir EMPTY && cd EMPTY && bash CHECKOUT/experiments/packaging/user_check.sh VENV
# Each step prints its command, then its output.
set -euo pipefail
VENV=$1
export PATH="$VENV/bin:$PATH"
step() { echo; echo "\$ $*"; "$@"; }

step python -c "import l2l_tf, sys; print(l2l_tf.__file__.startswith(sys.prefix), l2l_tf.__version__)"
step python -c "import importlib.metadata as m; print('installed top-level folders:', sorted({f.parts[0] for f in m.files('l2l_tf') if f.parts[0] != '..'}))"
step l2l-optimizers
step python -c "from l2l_tf import LearnedOptimizer; o = LearnedOptimizer.load('mnist_lstm_momentum'); print(type(o).__name__, 'state floats per parameter:', o.state_size)"
step sh -c "l2l-meta-train --helpshort | grep -E '^  --(problem|problem_fn|data_source|data_dir|num_runs):'"
step sh -c "l2l-evaluate --helpshort | grep -E '^  --(problem|data_source|data_dir|optimizer|output_dir):'"

cat > user_fit.py <<'PY'
import json
import os
import zipfile

import l2l_tf
import keras
import numpy as np

rng = np.random.default_rng(0)
x = rng.random((4096, 64), dtype=np.float32)
y = (x[:, :32].sum(axis=1) > x[:, 32:].sum(axis=1)).astype("int32")
model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256, activation="sigmoid"), keras.layers.Dense(32, activation="sigmoid"), keras.layers.Dense(2)])
model.compile(optimizer=l2l_tf.LearnedOptimizer.load("mnist_lstm_momentum"),
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
print("parameters:", model.count_params())
history = model.fit(x, y, batch_size=128, epochs=3, verbose=0)
print("fit loss per epoch:", [round(v, 4) for v in history.history["loss"]])
config = model.optimizer.get_config()
print("optimizer config:", len(json.dumps(config)), "characters;", json.dumps(config)[:200], "...")
model.save("user_model.keras")
with zipfile.ZipFile("user_model.keras") as archive:
    print("user_model.keras:", os.path.getsize("user_model.keras"), "bytes; config.json", archive.getinfo("config.json").file_size,
          "bytes; weights", archive.getinfo("model.weights.h5").file_size, "bytes")
restored = keras.models.load_model("user_model.keras")
same = all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(model.optimizer.variables, restored.optimizer.variables))
print("restored optimizer variables identical:", same)
model.fit(x, y, batch_size=128, epochs=1, verbose=0, shuffle=False)
restored.fit(x, y, batch_size=128, epochs=1, verbose=0, shuffle=False)
print("one more epoch, weights identical:", all(np.array_equal(a, b) for a, b in zip(model.get_weights(), restored.get_weights())))
PY
step python user_fit.py
step python -c "import keras
try:
    keras.models.load_model('user_model.keras')
except TypeError as error:
    print('without import l2l_tf:', len(str(error)), 'characters:', str(error)[:160], '...')"

cat > my_problem.py <<'PY'
import l2l_tf
import keras
import numpy as np


def build_model():
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="tanh"), keras.layers.Dense(2)])


def make():
    rng = np.random.default_rng(0)
    x = rng.random((2048, 8), dtype=np.float32)
    y = (x[:, :4].sum(axis=1) > x[:, 4:].sum(axis=1)).astype("int32")
    return l2l_tf.KerasProblem(build_model, (x[:1536], y[:1536]), (x[1536:], y[1536:]), batch_size=64, name="my_model")
PY
cat > user_meta_train.py <<'PY'
import l2l_tf
from l2l_tf import export, progress

from my_problem import build_model, make

problem = make()  # a KerasProblem of the user's model on (x, y) arrays
options = l2l_tf.TrainingOptions(num_epochs=30, validation_every=10, validation_runs=4, log_every=10)
summary = l2l_tf.meta_train(l2l_tf.CoordinatewiseLSTM(), problem, l2l_tf.MetaConfig(num_steps=40, unroll_length=20),
                            options, "runs/my_model")
print("summary:", summary)
export.export_checkpoint("runs/my_model", "runs/my_model_rule")
optimizer = l2l_tf.LearnedOptimizer.load("runs/my_model_rule")
model = build_model()
model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
print("loaded the meta-trained rule:", type(optimizer).__name__, optimizer.state_size)
PY
step python user_meta_train.py
step l2l-meta-train --problem_fn=my_problem:make --save_path=runs/cli --num_runs=10 --num_steps=40 --unroll_length=20 --validation_every=5 --validation_runs=2 --log_every=5 --export_dir=runs/cli_rule
step l2l-evaluate --problem_fn=my_problem:make --optimizer=runs/cli_rule --num_steps=40 --num_seeds=5 --tuning_seeds=2 --baselines=adam,sgd --learning_rates=0.01,0.1,1
echo "print('this is the user s own train.py')" > train.py
step python -m train  # the user's train.py runs: l2l_tf installed no 'train' package
