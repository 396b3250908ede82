"""The cheap rule family: a tiny per-parameter MLP that corrects a nominal Adam step.

The paper's LSTM carries 80 floats of state per parameter and costs ~10k FLOPs per
parameter per step. This family (``family = "mlp"``) keeps ``K + 2`` floats per parameter
(K gradient averages, one second-moment average, one step counter; 5 by default, 20
bytes) and runs a one-hidden-layer MLP of 8 units per parameter::

    d      = Adam's direction from the first average and the second moment (bias-corrected)
    a, b   = tanh(MLP(coordinate features, per-tensor features))
    update = -base_step * (d * exp(max_log_scale * a) + correction_scale * b)

The MLP's output layer starts at zero, so the untrained rule *is* Adam at learning rate
``base_step`` (Keras' ``Adam`` update, to float rounding); meta-training only has to
improve on it, and the learned part is bounded (a step at most ``e^max_log_scale`` times
Adam's, plus at most ``correction_scale * base_step``), which keeps drop-in use stable.

Coordinate features: the gradient normalised by its tensor's RMS; the Adam-normalised
gradient and averages (``m_k_hat / sqrt(v_hat)``); the parameter value normalised by its
tensor's RMS (``use_params``). Per-tensor features (computed once per tensor and added to
the first layer's pre-activations, so they cost nothing per parameter): the tensor's mean
squared Adam direction (how consistent its gradients are), three time scales of the step
count and the log of the tensor's size. The per-tensor reductions need the layout
(``needs_layout``): see ``l2l_tf.layout``.

Optionally (``step_adaptation_rate > 0``, one more float of state) each tensor also carries a
log step factor ``s`` that multiplies its update: ``s`` moves every step by the rate times the
cosine between the tensor's gradient and its previous Adam direction (a normalised
hypergradient, as in Baydin et al., 2018), within ``+-max_adapted_log_scale``; it has no
weights, so a trained rule's weights serve with or without it (``warm_start``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import ClassVar

import tensorflow as tf

from l2l_tf.layout import TensorLayout
from l2l_tf.rule_base import (
    JsonConfig,
    RuleConfigError,
    RuleModule,
    _is_number,
    tracing_for_xla,
)

MAX_HIDDEN_LAYERS = 4
MAX_MLP_HIDDEN_SIZE = 256
MAX_STATE_FLOATS = 8  # the family's promise: at most 32 bytes of float32 state per parameter
TIME_SCALES = (10.0, 100.0, 1000.0)
NUM_TENSOR_FEATURES = 2 + len(TIME_SCALES)  # consistency, time scales, log size
_TINY = 1e-30  # keeps an all-zero tensor's RMS normalisation finite (0 * large = 0)


def _whole_tensor_mean(values: tf.Tensor) -> tf.Tensor:
    """The mean of all values: a scalar (the per-tensor mean of one tensor's slice)."""
    return tf.reduce_mean(values)


def _dot(columns: list[tf.Tensor], weights: list[tf.Tensor]) -> tf.Tensor:
    """``sum_i columns[i] * weights[i]`` (one unit's pre-activation, column by column)."""
    total = columns[0] * weights[0]
    for column, weight in zip(columns[1:], weights[1:]):
        total += column * weight
    return total


@dataclasses.dataclass(frozen=True)
class MLPRuleConfig(JsonConfig):
    """Architecture of a per-parameter MLP rule (``MLPRule``).

    ``momentum_decays[0]`` is the nominal direction's first-moment decay (Adam's beta_1),
    ``second_moment_decay`` its beta_2 and ``epsilon`` its epsilon.
    """

    family: ClassVar[str] = "mlp"

    hidden_size: int = 8
    num_hidden_layers: int = 1
    momentum_decays: tuple[float, ...] = (0.9, 0.99, 0.999)
    second_moment_decay: float = 0.999
    epsilon: float = 1e-7
    base_step: float = 1e-3
    max_log_scale: float = 2.3
    correction_scale: float = 0.1
    use_params: bool = True
    step_adaptation_rate: float = 0.0
    max_adapted_log_scale: float = 2.3

    def __post_init__(self) -> None:
        for name, limit in (("hidden_size", MAX_MLP_HIDDEN_SIZE), ("num_hidden_layers", MAX_HIDDEN_LAYERS)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
                raise RuleConfigError(f"{name} must be an integer in [1, {limit}], got {value!r}")
        decays = self.momentum_decays
        if isinstance(decays, (str, bytes)) or not hasattr(decays, "__len__"):
            raise RuleConfigError(f"momentum_decays must be a list of numbers, got {decays!r}")
        if not 1 <= len(decays) <= MAX_STATE_FLOATS - 2:
            raise RuleConfigError(f"momentum_decays must hold 1 to {MAX_STATE_FLOATS - 2} rates, got {len(decays)}")
        if not all(_is_number(b) and 0.0 < b < 1.0 for b in (*decays, self.second_moment_decay)):
            raise RuleConfigError(f"momentum_decays and second_moment_decay must lie in (0, 1), got {decays},"
                                  f" {self.second_moment_decay!r}")
        may_be_zero = ("correction_scale", "step_adaptation_rate")
        for name in ("epsilon", "base_step", "max_log_scale", "correction_scale", "step_adaptation_rate",
                     "max_adapted_log_scale"):
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value) or value < 0 or (value == 0 and name not in may_be_zero):
                raise RuleConfigError(f"{name} must be a finite number {'>=' if name in may_be_zero else '>'} 0,"
                                      f" got {value!r}")
        if not isinstance(self.use_params, bool):
            raise RuleConfigError(f"use_params must be true or false, got {self.use_params!r}")
        if self.step_adaptation_rate > 0 and len(decays) > MAX_STATE_FLOATS - 3:
            raise RuleConfigError(f"momentum_decays must hold 1 to {MAX_STATE_FLOATS - 3} rates with"
                                  f" step_adaptation_rate > 0 (at most {MAX_STATE_FLOATS} floats of state), got {len(decays)}")
        object.__setattr__(self, "momentum_decays", tuple(float(b) for b in decays))
        for name in ("second_moment_decay", "epsilon", "base_step", "max_log_scale", "correction_scale",
                     "step_adaptation_rate", "max_adapted_log_scale"):
            object.__setattr__(self, name, float(getattr(self, name)))

    @property
    def adapts_step(self) -> bool:
        """Whether each tensor carries an adapted log step factor (``step_adaptation_rate > 0``)."""
        return self.step_adaptation_rate > 0

    @property
    def state_size(self) -> int:
        """Floats of state per parameter: one per momentum decay, the second moment, the tensor's
        adapted log step factor (``adapts_step``; the same in all its coordinates), the step count."""
        return len(self.momentum_decays) + 2 + int(self.adapts_step)

    @property
    def num_coordinate_features(self) -> int:
        return len(self.momentum_decays) + 2 + int(self.use_params)

    def weight_shapes(self) -> list[tuple[int, ...]]:
        """Shapes in ``MLPRule.weights()`` order (see ``weight_names``)."""
        hidden = self.hidden_size
        deeper = self.num_hidden_layers - 1
        return [
            (self.num_coordinate_features, hidden), (NUM_TENSOR_FEATURES, hidden), (hidden,),
            *[(hidden, hidden)] * deeper, *[(hidden,)] * deeper, (hidden, 2), (2,),
        ]

    def weight_names(self) -> list[str]:
        """The ``MLPRule`` attribute paths of the weights (the rule file's checkpoint keys)."""
        deeper = range(self.num_hidden_layers - 1)
        return [
            "coordinate_kernel", "tensor_kernel", "input_bias",
            *[f"hidden_kernels/{i}" for i in deeper], *[f"hidden_biases/{i}" for i in deeper],
            "output_kernel", "output_bias",
        ]


class MLPRule(RuleModule):
    """The per-parameter MLP rule of ``config`` (a ``rules.Rule`` and ``CellRule`` that
    needs the tensor layout, and the parameter values when ``config.use_params``)."""

    family = "mlp"
    needs_layout = True
    state_needs_float32 = True  # the step counter: bfloat16 stops counting at 256
    prefers_xla = True  # LearnedOptimizer compiles the step: its many small elementwise ops fuse

    def __init__(self, config: MLPRuleConfig | None = None, seed: int = 0, name: str | None = None):
        super().__init__(name=name or "mlp_rule")
        self.config = config or MLPRuleConfig()
        shapes = self.config.weight_shapes()
        deeper = self.config.num_hidden_layers - 1
        with self.name_scope:
            zero = {len(shapes) - 2}  # the output kernel: the rule starts as Adam
            values = [self._initial(shape, [seed, i], i in zero) for i, shape in enumerate(shapes)]
            variables = [tf.Variable(v, name=n.replace("/", "_")) for v, n in zip(values, self.config.weight_names())]
        self.coordinate_kernel, self.tensor_kernel, self.input_bias = variables[:3]
        self.hidden_kernels = variables[3 : 3 + deeper]
        self.hidden_biases = variables[3 + deeper : 3 + 2 * deeper]
        self.output_kernel, self.output_bias = variables[-2:]

    @staticmethod
    def _initial(shape: tuple[int, ...], seed: list[int], zero: bool) -> tf.Tensor:
        """Glorot-uniform kernels; zero biases, and zeros where ``zero``."""
        if zero or len(shape) == 1:
            return tf.zeros(shape)
        limit = math.sqrt(6.0 / (shape[0] + shape[1]))
        return tf.random.stateless_uniform(shape, seed=seed, minval=-limit, maxval=limit)

    @property
    def needs_params(self) -> bool:
        return self.config.use_params

    def split_state(self, state: tf.Tensor) -> list[tf.Tensor]:
        """The state as one cell (it is only a few columns wide)."""
        return [state]

    def join_state(self, cells: list[tf.Tensor]) -> tf.Tensor:
        return cells[0]

    def step(self, gradients: tf.Tensor, state: tf.Tensor, layout: TensorLayout | None = None,
             params: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        """One update: ``[N]`` gradients, ``[N, state_size]`` state, the tensors' ``layout``
        and (``use_params``) the ``[N]`` parameter values -> ``([N] update, new state)``."""
        update, cells = self.step_cells(gradients, [state], layout, params)
        return update, cells[0]

    def step_cells(self, gradients: tf.Tensor, cells: list[tf.Tensor], layout: TensorLayout | None = None,
                   params: tf.Tensor | None = None) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """``step`` on the state as cells (``split_state``), as meta-training calls it.

        With a layout of Python-int sizes each tensor is updated on its own slice (its
        reductions are plain means, its per-tensor features scalars);
        with sizes given as a tensor (an exported rule's signature) the same values come
        from segment reductions gathered back to the coordinates.
        """
        if layout is None:
            raise ValueError("MLPRule normalises per tensor: pass layout=TensorLayout(sizes of the tensors)")
        if self.config.use_params and params is None:
            raise ValueError("this MLPRule reads the parameter values (use_params): pass params=")
        state = cells[0]
        t = tf.reduce_max(state[:, -1]) + 1.0  # the step count (coordinates skipped for NaN lag behind)
        if params is None:
            params = tf.zeros_like(gradients)
        if layout.is_static:
            parts = [
                self._tensor_step(g, s, p, t, _whole_tensor_mean, tf.constant(math.log1p(size) / 10.0))
                for g, s, p, size in zip(*(tf.split(x, layout.sizes) for x in (gradients, state, params)),
                                          layout.sizes)
            ]
            update, averages = (tf.concat(list(part), axis=0) for part in zip(*parts))
        else:
            log_size = layout.broadcast(tf.math.log1p(tf.cast(layout.sizes_tensor(), tf.float32)) / 10.0)
            update, averages = self._tensor_step(gradients, state, params, t, layout.spread_mean, log_size)
        return update, [tf.concat([averages, tf.fill(tf.shape(averages[:, :1]), t)], axis=1)]

    def _tensor_step(self, g: tf.Tensor, state: tf.Tensor, p: tf.Tensor, t: tf.Tensor,
                     mean: Callable[[tf.Tensor], tf.Tensor], log_size: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """The ``[n]`` update and ``[n, K + 1]`` new averages of coordinates whose per-tensor
        means ``mean`` gives (a scalar, or one per coordinate); ``t`` is the step count.

        Everything is written on ``[n]`` columns, and so is the MLP when traced for XLA
        (``_mlp``): the whole step fuses into a few loops over the coordinates, 7x faster on CPU
        than ``[n, F] x [F, H]`` matmuls with their ``[n, H]`` intermediates.
        """
        config = self.config
        k = len(config.momentum_decays)
        columns = tf.unstack(state, axis=1)
        momenta = [b * m + (1.0 - b) * g for b, m in zip(config.momentum_decays, columns[:k])]
        beta_2 = config.second_moment_decay
        v = beta_2 * columns[k] + (1.0 - beta_2) * g * g
        corrections = 1.0 - tf.pow(tf.constant([*config.momentum_decays, beta_2]), t)  # Keras Adam's
        inverse_root = 1.0 / (tf.sqrt(v) + config.epsilon)
        root_v_correction = tf.sqrt(corrections[k])
        normalised = [m * (root_v_correction / corrections[i] * inverse_root) for i, m in enumerate(momenta)]
        direction = normalised[0]  # Adam's direction
        raw = [g, p] if config.use_params else [g]
        features = [x * tf.math.rsqrt(mean(x * x) + _TINY) for x in raw]
        features += [g * root_v_correction * inverse_root, *normalised]
        times = tf.unstack(tf.tanh(t / tf.constant(TIME_SCALES)))
        tensor = [tf.sqrt(mean(direction * direction)), *times, log_size]
        a, b = self._mlp(features, tensor)
        update = -config.base_step * (direction * tf.exp(config.max_log_scale * a) + config.correction_scale * b)
        if not config.adapts_step:
            return update, tf.stack([*momenta, v], axis=1)
        log_factor = self._adapted_log_factor(g, columns[0], columns[k], columns[k + 1], mean)
        return update * tf.exp(log_factor), tf.stack([*momenta, v, tf.zeros_like(g) + log_factor], axis=1)

    def _adapted_log_factor(self, g: tf.Tensor, m: tf.Tensor, v: tf.Tensor, log_factor: tf.Tensor,
                            mean: Callable[[tf.Tensor], tf.Tensor]) -> tf.Tensor:
        """The tensor's new log step factor: the old one moved by ``step_adaptation_rate`` times
        the cosine between this step's gradient and the previous step's Adam direction
        ``m / sqrt(v)`` (a hypergradient of the loss with respect to the log step, as in
        Baydin et al., 2018: positive while successive steps agree, so too short a step grows
        and an oscillating one shrinks), clipped to ``+-max_adapted_log_scale``."""
        config = self.config
        previous = m / (tf.sqrt(v) + config.epsilon)
        agreement = mean(g * previous) * tf.math.rsqrt(mean(g * g) * mean(previous * previous) + _TINY)
        moved = mean(log_factor) + config.step_adaptation_rate * tf.clip_by_value(agreement, -1.0, 1.0)
        return tf.clip_by_value(moved, -config.max_adapted_log_scale, config.max_adapted_log_scale)

    def _mlp(self, features: list[tf.Tensor], tensor: list[tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        """The bounded outputs ``tanh(a), tanh(b)`` (``[n]`` each) of the MLP on the coordinate
        ``features`` and the per-tensor features ``tensor`` (scalars or ``[n]``), which enter
        as a bias of the first layer. Written as sums of column-times-weight terms, which XLA
        fuses into a few loops over the coordinates, or, traced for a plain graph
        (``rule_base.traced_for(False)``), as matmuls: there a meta-training unroll runs faster,
        traces about 3x faster with fewer ops, and holds about half the memory
        (``benchmarks/RESULTS.md``)."""
        if not tracing_for_xla():
            return self._mlp_matmuls(features, tensor)
        weights = [tf.unstack(tf.reshape(w, [-1])) for w in self.weights()]
        coordinate_kernel, tensor_kernel, input_bias = weights[:3]
        hidden_size = self.config.hidden_size
        hidden = [
            tf.nn.relu(_dot(features, coordinate_kernel[j::hidden_size])
                       + _dot(tensor, tensor_kernel[j::hidden_size]) + input_bias[j])
            for j in range(hidden_size)
        ]
        layers = self.config.num_hidden_layers - 1
        for kernel, bias in zip(weights[3 : 3 + layers], weights[3 + layers : 3 + 2 * layers]):
            hidden = [tf.nn.relu(_dot(hidden, kernel[j::hidden_size]) + bias[j]) for j in range(hidden_size)]
        output_kernel, output_bias = weights[-2:]
        return tuple(tf.tanh(_dot(hidden, output_kernel[o::2]) + output_bias[o]) for o in range(2))

    def _mlp_matmuls(self, features: list[tf.Tensor], tensor: list[tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        """``_mlp`` as ``[n, F] x [F, H]`` matmuls (the per-tensor features' term stays a short sum)."""
        terms = [tf.reshape(x, [-1, 1]) * self.tensor_kernel[i] for i, x in enumerate(tensor)]  # [1 or n, H]
        tensor_term = functools.reduce(tf.add, terms)  # broadcasts: some are per tensor, some per step
        hidden = tf.nn.relu(tf.stack(features, axis=1) @ self.coordinate_kernel + tensor_term + self.input_bias)
        for kernel, bias in zip(self.hidden_kernels, self.hidden_biases):
            hidden = tf.nn.relu(hidden @ kernel + bias)
        outputs = tf.tanh(hidden @ self.output_kernel + self.output_bias)
        return outputs[:, 0], outputs[:, 1]

    def weights(self) -> list[tf.Variable]:
        """The weight variables in ``MLPRuleConfig.weight_shapes`` order."""
        return [self.coordinate_kernel, self.tensor_kernel, self.input_bias, *self.hidden_kernels,
                *self.hidden_biases, self.output_kernel, self.output_bias]


def warm_start(rule: MLPRule, source: MLPRule) -> None:
    """Initialises ``rule`` with ``source``'s weights: same architecture, except that ``rule``
    may adapt its step (``step_adaptation_rate``, ``max_adapted_log_scale``: no weights of their own)."""
    def core(config: MLPRuleConfig) -> MLPRuleConfig:
        return dataclasses.replace(config, step_adaptation_rate=0.0, max_adapted_log_scale=2.3)

    if core(rule.config) != core(source.config):
        raise ValueError(f"cannot initialise a rule {rule.config} from a rule {source.config}: architectures"
                         " must match (or differ only in step_adaptation_rate, max_adapted_log_scale)")
    for target, value in zip(rule.weights(), source.weights()):
        target.assign(value)
