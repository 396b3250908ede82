"""The coordinatewise LSTM update rule (Andrychowicz et al., 2016).

One small LSTM, whose weights are shared by every coordinate of every optimizee
parameter, maps each coordinate's (preprocessed) gradient and its own recurrent
state to an additive update. The rule works on a flat batch of coordinates, so one
call updates every coordinate of every parameter at once::

    rule = CoordinatewiseLSTM(RuleConfig())
    state = rule.init_state(n)                 # [n, rule.state_size]
    update, state = rule.step(gradients, state)  # theta_new = theta + update

State layout: for layer ``l`` (0-based) the columns ``[2lH, (2l+1)H)`` hold ``h`` and
``[(2l+1)H, (2l+2)H)`` hold ``c``; ``H = hidden_size``. With ``momentum_decays`` (K
decay rates, an extension beyond the paper) the last K columns hold one running average
of the gradient per rate, ``m_k <- b_k m_k + (1 - b_k) g``; the LSTM then sees the
preprocessed gradient *and* the preprocessed averages. An LSTM fed only log/sign
features cannot average raw gradients itself (it never sees them linearly), which is
what momentum methods do; the averages give it that directly.

Global averaging cells (the paper's LSTM+GAC, ``RuleConfig.gac_cells = k``): in every layer
the last ``k`` of the ``H`` units are shared by all coordinates. Each coordinate computes
them as usual, but what every coordinate reads back as those units' recurrent input at the
next step is their **mean over all coordinates** (``global_context``: ``[layers, k]``), so
information travels between coordinates with one step's delay: e.g. a cell holding ``g^2``
lets the rule scale by the previous step's gradient norm (norm clipping). The mean is taken
from the incoming state before any cutting of the coordinates into blocks
(``LearnedOptimizer(coordinate_block_size=...)``, meta-training's ``--coordinate_blocks``),
so blocked and unblocked steps compute the same values.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import tensorflow as tf

from l2l_tf import preprocess
from l2l_tf.rule_base import (  # noqa: F401  (re-exported: l2l_tf.rules is where callers find them)
    JsonConfig,
    RuleConfigError,
    RuleModule,
    RuleWeightsError,
    _is_number,
    check_weight_values,
)

# Limits on a rule's declared size, checked before anything is allocated: a rule file or
# a .keras config from someone else must not make l2l_tf allocate gigabytes. The largest
# rule within them (8 layers of 1024 units) has 8 x 2048 x 4096 floats = 256 MiB.
MAX_NUM_LAYERS = 8
MAX_HIDDEN_SIZE = 1024
MAX_MOMENTUM_DECAYS = 16


@dataclasses.dataclass(frozen=True)
class RuleConfig(JsonConfig):
    """Architecture and hyper-parameters of a coordinatewise LSTM rule."""

    family: ClassVar[str] = "lstm"  # see l2l_tf.rule_families

    num_layers: int = 2
    hidden_size: int = 20
    preprocessing: str = preprocess.LOG_SIGN
    preprocessing_p: float = 10.0
    output_scale: float = 0.1
    momentum_decays: tuple[float, ...] = ()
    gac_cells: int = 0  # global averaging cells per layer (the paper's LSTM+GAC); 0: none
    progress_input: bool = False  # one more input: how far through its run the optimizee is

    def __post_init__(self) -> None:
        for name in ("num_layers", "hidden_size", "gac_cells"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise RuleConfigError(f"{name} must be an integer, got {value!r}")
        if not 1 <= self.num_layers <= MAX_NUM_LAYERS:
            raise RuleConfigError(f"num_layers must be in [1, {MAX_NUM_LAYERS}], got {self.num_layers}")
        if not 1 <= self.hidden_size <= MAX_HIDDEN_SIZE:
            raise RuleConfigError(f"hidden_size must be in [1, {MAX_HIDDEN_SIZE}], got {self.hidden_size}")
        if not 0 <= self.gac_cells < self.hidden_size:
            raise RuleConfigError(f"gac_cells must be in [0, hidden_size={self.hidden_size}), got {self.gac_cells}")
        if not isinstance(self.progress_input, bool):
            raise RuleConfigError(f"progress_input must be true or false, got {self.progress_input!r}")
        if not isinstance(self.preprocessing, str):
            raise RuleConfigError(f"preprocessing must be a string, got {self.preprocessing!r}")
        preprocess.check_kind(self.preprocessing)
        for name in ("preprocessing_p", "output_scale"):
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value) or value <= 0:
                raise RuleConfigError(f"{name} must be a finite number > 0, got {value!r}")
        decays = self.momentum_decays
        if isinstance(decays, (str, bytes)) or not hasattr(decays, "__len__"):
            raise RuleConfigError(f"momentum_decays must be a list of numbers, got {decays!r}")
        if len(decays) > MAX_MOMENTUM_DECAYS:
            raise RuleConfigError(f"momentum_decays holds {len(decays)} rates; at most {MAX_MOMENTUM_DECAYS}")
        if not all(_is_number(b) and 0.0 < b < 1.0 for b in decays):
            raise RuleConfigError(f"momentum_decays must lie in (0, 1), got {decays}")
        object.__setattr__(self, "momentum_decays", tuple(float(b) for b in decays))
        object.__setattr__(self, "preprocessing_p", float(self.preprocessing_p))
        object.__setattr__(self, "output_scale", float(self.output_scale))

    @property
    def state_size(self) -> int:
        """Floats of state per coordinate: layers x (h, c) x hidden units, plus one per
        momentum decay rate."""
        return 2 * self.num_layers * self.hidden_size + len(self.momentum_decays)

    @property
    def num_inputs(self) -> int:
        """Input features per coordinate: the preprocessed gradient and averages (and the
        run's progress, with ``progress_input``)."""
        return preprocess.num_features(self.preprocessing) * (1 + len(self.momentum_decays)) + int(self.progress_input)

    def weight_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of the rule's weights in ``CoordinatewiseLSTM.weights()`` order: each
        layer's kernel, each layer's bias, the output kernel and bias."""
        hidden = self.hidden_size
        inputs = [self.num_inputs] + [hidden] * (self.num_layers - 1)
        return [
            *[(fan_in + hidden, 4 * hidden) for fan_in in inputs],
            *[(4 * hidden,)] * self.num_layers,
            (hidden, 1),
            (1,),
        ]

    def weight_names(self) -> list[str]:
        """Names of the rule's weights in ``weight_shapes`` order (``kernels/<i>``,
        ``biases/<i>``, ``output_kernel``, ``output_bias``): the attribute paths of
        ``CoordinatewiseLSTM``, which the rule file's checkpoint keys are made of."""
        layers = range(self.num_layers)
        return [*[f"kernels/{i}" for i in layers], *[f"biases/{i}" for i in layers], "output_kernel", "output_bias"]

    def to_dict(self) -> dict[str, Any]:
        values = super().to_dict()
        for name in ("gac_cells", "progress_input"):  # files of rules without them stay as they were
            if not values[name]:
                del values[name]
        return values


@runtime_checkable
class Rule(Protocol):
    """What every update rule offers, and all that evaluation, the Keras optimizer and
    export rely on: the Python rules (``CoordinatewiseLSTM``, ``rules_mlp.MLPRule``), a rule
    loaded from a file (``rule_file.load``) and the sharded rule (``sharding.CoordinateShards``).

    ``step`` maps ``[N]`` gradients and ``[N, state_size]`` state to the additive ``[N]``
    update and the new state; ``get_weights``/``set_weights`` (de)serialise the weights as
    float32 arrays in ``config.weight_shapes()`` order.

    Rules whose ``has_global_cells`` is true (``CoordinatewiseLSTM`` with ``gac_cells``) read a
    statistic over all coordinates; callers that cut the coordinates into blocks compute it
    first with ``layout.global_context(rule, ...)`` and pass it to every block's step as ``context=``.

    Optional inputs: a rule whose class attribute ``needs_layout`` is true also takes
    ``layout=`` (a ``layout.TensorLayout``: which coordinates form which tensor, for
    per-tensor or all-coordinate reductions), one whose ``needs_params`` is true also takes
    ``params=`` (the ``[N]`` parameter values before the update). Coordinatewise rules
    define neither (both default to false); callers go through ``layout.rule_step`` /
    ``layout.rule_step_cells``, which pass exactly what a rule declares. A rule that needs
    the layout cannot be run on arbitrary blocks of coordinates (``layout.check_blockable``).
    A rule whose ``needs_progress`` is true (``RuleConfig.progress_input``) also takes
    ``progress=``: a float32 scalar, how far through its run the optimizee is (``t / T``,
    clipped to [0, 1]; ``layout.run_progress``).
    """

    config: RuleConfig

    @property
    def state_size(self) -> int: ...

    def init_state(self, num_coordinates: int | tf.Tensor) -> tf.Tensor: ...

    def step(self, gradients: tf.Tensor, state: tf.Tensor, **inputs: Any) -> tuple[tf.Tensor, tf.Tensor]: ...

    def weights(self) -> list[tf.Variable]: ...

    def get_weights(self) -> list[np.ndarray]: ...

    def set_weights(self, values: Sequence[Any], source: str = "weights") -> None: ...


@runtime_checkable
class CellRule(Rule, Protocol):
    """A ``Rule`` that meta-training can step on its state split into cells (see
    ``CoordinatewiseLSTM.step_cells``)."""

    def split_state(self, state: tf.Tensor) -> list[tf.Tensor]: ...

    def join_state(self, cells: list[tf.Tensor]) -> tf.Tensor: ...

    def step_cells(
        self, gradients: tf.Tensor, cells: list[tf.Tensor], **inputs: Any
    ) -> tuple[tf.Tensor, list[tf.Tensor]]: ...


class CoordinatewiseLSTM(RuleModule):
    """A stacked LSTM applied independently to every coordinate, with shared weights.

    Each layer computes all four gates with a single matmul of ``[x, h]`` against a
    fused ``[inputs + H, 4H]`` kernel (gate order i, f, g, o). The final layer's ``h``
    goes through a linear map to one output, multiplied by ``config.output_scale``.
    """

    family = "lstm"  # the rule file's ``family`` (rule_families)
    needs_layout = False  # coordinatewise: no per-tensor reductions (layout.rule_step)
    needs_params = False

    def __init__(self, config: RuleConfig | None = None, seed: int = 0, name: str | None = None):
        super().__init__(name=name or "coordinatewise_lstm")
        self.config = config or RuleConfig()
        hidden = self.config.hidden_size
        inputs = self.config.num_inputs
        self.kernels: list[tf.Variable] = []
        self.biases: list[tf.Variable] = []
        with self.name_scope:
            for layer in range(self.config.num_layers):
                fan_in = inputs + hidden
                limit = math.sqrt(6.0 / (fan_in + 4 * hidden))
                kernel = tf.random.stateless_uniform(
                    [fan_in, 4 * hidden], seed=[seed, layer], minval=-limit, maxval=limit
                )
                self.kernels.append(tf.Variable(kernel, name=f"lstm_{layer}/kernel"))
                forget_bias = tf.concat(
                    [tf.zeros([hidden]), tf.ones([hidden]), tf.zeros([2 * hidden])], axis=0
                )
                self.biases.append(tf.Variable(forget_bias, name=f"lstm_{layer}/bias"))
                inputs = hidden
            self.output_kernel = tf.Variable(
                tf.random.stateless_normal([hidden, 1], seed=[seed, 1000], stddev=0.01),
                name="output/kernel",
            )
            self.output_bias = tf.Variable(tf.zeros([1]), name="output/bias")

    @property
    def needs_progress(self) -> bool:
        """Whether ``step`` takes ``progress=`` (``RuleConfig.progress_input``)."""
        return self.config.progress_input

    @property
    def has_global_cells(self) -> bool:
        """Whether some cells are global averaging cells (``RuleConfig.gac_cells``)."""
        return self.config.gac_cells > 0

    def global_context(self, blocks: Sequence[list[tf.Tensor]]) -> tf.Tensor:
        """``[num_layers, gac_cells]``: each layer's global cells (the last ``gac_cells`` units
        of ``h``) averaged over every coordinate of ``blocks`` (each block's ``split_state``)."""
        k, layers = self.config.gac_cells, range(self.config.num_layers)
        sums = tf.add_n([tf.stack([tf.reduce_sum(cells[2 * i][:, -k:], 0) for i in layers]) for cells in blocks])
        count = tf.add_n([tf.shape(cells[0])[0] for cells in blocks])
        return sums / tf.cast(tf.maximum(count, 1), tf.float32)

    def split_state(self, state: tf.Tensor) -> list[tf.Tensor]:
        """``[N, state_size]`` -> the per-layer cells ``[h_0, c_0, h_1, c_1, ...]``, each
        ``[N, H]``, then (with momentum) the ``[N, K]`` gradient averages."""
        sizes = [self.config.hidden_size] * (2 * self.config.num_layers)
        if self.config.momentum_decays:
            sizes.append(len(self.config.momentum_decays))
        return tf.split(state, sizes, axis=1)

    def join_state(self, cells: list[tf.Tensor]) -> tf.Tensor:
        """Inverse of ``split_state``."""
        return tf.concat(cells, axis=1)

    def step(
        self, gradients: tf.Tensor, state: tf.Tensor, context: tf.Tensor | None = None,
        progress: tf.Tensor | None = None,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """One update for a flat batch of coordinates.

        Args:
          gradients: ``[N]`` float32 gradients, one per coordinate.
          state: ``[N, state_size]`` float32 recurrent state.
          context: with global averaging cells, ``global_context`` over *all* coordinates when
            these ``N`` are one block of them; default: computed from ``state``.
          progress: with ``progress_input``, the run's progress ``t / T`` (scalar, in [0, 1]).

        Returns:
          ``(update, new_state)``: the additive ``[N]`` update and the ``[N, state_size]`` state.
        """
        update, cells = self.step_cells(gradients, self.split_state(state), context, progress)
        return update, self.join_state(cells)

    def step_cells(
        self, gradients: tf.Tensor, cells: list[tf.Tensor], context: tf.Tensor | None = None,
        progress: tf.Tensor | None = None,
    ) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """``step`` on the state split into cells (see ``split_state``).

        Meta-training carries the cells through an unroll instead of one ``[N, S]``
        tensor: slicing and re-concatenating the state every step costs more than the
        LSTM itself in the backward pass.
        """
        x, momenta = self._features(gradients, cells, progress)
        k = self.config.gac_cells
        if k and context is None:
            context = self.global_context([cells])
        new_cells = []
        for layer, (kernel, bias) in enumerate(zip(self.kernels, self.biases)):
            h, c = cells[2 * layer], cells[2 * layer + 1]
            if k:  # the global cells read back every coordinate's mean
                shared = tf.broadcast_to(context[layer], [tf.shape(h)[0], k])
                h = tf.concat([h[:, :-k], shared], axis=1)
            gates = tf.matmul(tf.concat([x, h], axis=1), kernel) + bias
            i, f, g, o = tf.split(gates, 4, axis=1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            h = tf.sigmoid(o) * tf.tanh(c)
            new_cells += [h, c]
            x = h
        update = tf.squeeze(tf.matmul(x, self.output_kernel) + self.output_bias, axis=1)
        return update * self.config.output_scale, new_cells + momenta

    def _features(
        self, gradients: tf.Tensor, cells: list[tf.Tensor], progress: tf.Tensor | None = None
    ) -> tuple[tf.Tensor, list[tf.Tensor]]:
        """The LSTM's ``[N, num_inputs]`` input, and the new gradient averages (if any)."""
        config = self.config
        features = [preprocess.preprocess(gradients, config.preprocessing, config.preprocessing_p)]
        momenta = []
        if config.momentum_decays:
            decays = tf.constant(config.momentum_decays, tf.float32)
            momenta = [decays * cells[-1] + (1.0 - decays) * gradients[:, None]]
            averaged = preprocess.preprocess(momenta[0], config.preprocessing, config.preprocessing_p)
            width = preprocess.num_features(config.preprocessing) * len(config.momentum_decays)
            features.append(tf.reshape(averaged, [-1, width]))
        if config.progress_input:
            if progress is None:
                raise ValueError("this rule reads the run's progress and needs progress= (t / T, a scalar)")
            progress = tf.clip_by_value(tf.cast(progress, tf.float32), 0.0, 1.0)
            features.append(tf.fill(tf.stack([tf.shape(gradients)[0], 1]), progress))
        return (features[0] if len(features) == 1 else tf.concat(features, axis=1)), momenta

    def weights(self) -> list[tf.Variable]:
        """The weight variables in ``RuleConfig.weight_shapes`` order."""
        return [*self.kernels, *self.biases, self.output_kernel, self.output_bias]



def warm_start(rule: CoordinatewiseLSTM, source: CoordinatewiseLSTM) -> None:
    """Initialises ``rule`` with ``source``'s weights.

    Same architecture: a plain copy. ``rule`` = ``source`` plus inputs ``source`` lacks (its
    ``momentum_decays`` where ``source`` has none, ``progress_input``): the first layer's kernel
    gets zero rows for the new inputs, so ``rule`` computes exactly what ``source`` does until
    meta-training gives those inputs weight.
    """
    def core(config: RuleConfig) -> RuleConfig:
        return dataclasses.replace(config, momentum_decays=(), progress_input=False)

    mine, theirs = rule.config, source.config
    compatible = (
        core(mine) == core(theirs)
        and theirs.momentum_decays in ((), mine.momentum_decays)
        and (mine.progress_input or not theirs.progress_input)
    )
    if not compatible:
        raise ValueError(
            f"cannot initialise a rule {mine} from a rule {source.config}: architectures"
            " must match (or differ only by added momentum_decays or progress_input)"
        )
    features = preprocess.num_features(theirs.preprocessing)

    def input_rows(config: RuleConfig) -> list[int]:  # row counts: gradient, averages, progress
        return [features, features * len(config.momentum_decays), int(config.progress_input)]

    for target, value in zip(rule.trainable_variables, source.trainable_variables):
        if target.shape != value.shape:  # the first layer's kernel, with new input rows
            parts = tf.split(value, [*input_rows(theirs), -1], axis=0)
            grown = [
                part if part.shape[0] == rows else tf.zeros([rows, value.shape[1]])
                for part, rows in zip(parts[:3], input_rows(mine))
            ]
            value = tf.concat([*grown, parts[3]], axis=0)
        target.assign(value)
