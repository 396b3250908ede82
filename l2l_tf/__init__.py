"""l2l_tf: learned optimizers (Andrychowicz et al., 2016) for TensorFlow 2 / Keras 3.

Main entry points:
  CoordinatewiseLSTM, RuleConfig   the coordinatewise LSTM update rule
  MetaConfig, MetaTrainer          truncated-BPTT meta-training (one unroll at a time)
  meta_train, TrainingOptions      the meta-training loop: validation, checkpoints, resume, progress
  Quadratic, KerasProblem          optimizee families
  export                           SavedModel export/load (export.export_rule, export.load)
  LearnedOptimizer                 a frozen rule as a keras.optimizers.Optimizer
  catalog                          the shipped rules by name (LearnedOptimizer.load("mnist_lstm_momentum"))
"""

from l2l_tf import startup

startup.import_tensorflow()  # before anything imports TensorFlow: its start-up lines filtered

from l2l_tf import catalog, export
from l2l_tf.meta import MetaConfig, MetaTrainer
from l2l_tf.optimizer import LearnedOptimizer
from l2l_tf.problems import KerasProblem, Problem, Quadratic, make_problem
from l2l_tf.rules import CoordinatewiseLSTM, RuleConfig
from l2l_tf.training import TrainingOptions, meta_train

__version__ = "0.1.0"

__all__ = [
    "CoordinatewiseLSTM", "KerasProblem", "LearnedOptimizer", "MetaConfig", "MetaTrainer", "Problem",
    "Quadratic", "RuleConfig", "TrainingOptions", "catalog", "export", "make_problem", "meta_train",
]
