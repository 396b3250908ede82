"""``LearnedOptimizer``: a frozen learned rule as a ``keras.optimizers.Optimizer``.

    model.compile(optimizer=LearnedOptimizer.load("mnist_lstm_momentum"), ...)  # or a rule folder

Each trainable variable gets its own ``[size, state_size]`` rule-state variable
(created in ``build``). A training step concatenates every variable's gradient and
state, runs the rule **once** over all coordinates (or once per block of
``coordinate_block_size`` coordinates),
and splits the result back. With a ``RuleSet`` (several named rules, e.g. the paper's
conv/FC pair; ``l2l_tf.rule_sets``) each variable is assigned to one rule at ``build``, and
each rule runs once per step over its variables' coordinates.

Supported: float16, bfloat16, float32 and float64 variables (the rule computes in
float32; updates are cast back to the variable's dtype), mixed precision (Keras keeps
float32 master weights and ``LossScaleOptimizer`` unscales before this optimizer),
sparse ``IndexedSlices`` gradients (e.g. ``Embedding``: densified, duplicate indices
summed, so every row's rule state advances as with a dense gradient), ``clipnorm``,
``clipvalue``, ``global_clipnorm``, ``weight_decay`` and ``use_ema``.
``learning_rate`` multiplies the learned update (1.0 = the rule as trained).

Distributed training: under ``MirroredStrategy`` and ``MultiWorkerMirroredStrategy`` the
gradients are summed over replicas and every replica's copies of the variables and rule
state get the same update (Keras' ``distribution.extended.update`` path), giving
single-device results on the same global batches; each replica still runs the rule once
per step. Other strategies (``ParameterServerStrategy``, ``TPUStrategy``,
``CentralStorageStrategy``) are refused at ``build``.

Non-finite gradients: a coordinate whose gradient is NaN or +-inf is not updated (no
rule update, no weight decay) and its rule state is kept as it was; all finite
coordinates update normally, with every Keras option: ``clipnorm``, ``global_clipnorm``
and ``clipvalue`` clip the finite coordinates only (a NaN does not poison its variable's
or the model's norm), and ``weight_decay`` decays only coordinates with finite gradients.

Speed: ``coordinate_block_size=16384`` runs the rule on blocks of that many coordinates, each its
own chain of ops, so each block's ``[block, 80]`` tensors stay in the cache instead of
every elementwise op streaming ``[N, 80]`` through main memory. On CPU this makes
steps that are *not* XLA-compiled (``jit_compile=False``, eager custom loops) faster:
the rule step 1.3-2.4x at N = 1e5-1e6 (``benchmarks/ab_frozen_memory.py``), a
269k-parameter MLP's Keras step 1.24x (the wide-MLP row of ``benchmarks/run.py``). Keras
compiles ``fit`` steps with XLA where it can, and there one call (the default,
``coordinate_block_size=0``) is as fast or faster. (Meta-training's ``coordinate_blocks``
cuts the coordinates the same way, into a number of blocks run as parallel chains:
``l2l_tf.sharding``.)

Memory: the rule state is ``state_size`` floats per parameter (80 for the 2x20 LSTM:
320 bytes in float32). ``state_dtype="bfloat16"`` stores it in half the memory; the
rule still computes in float32 (the state is widened before and rounded after each
step). Its effect on training is measured in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import functools
import math
import numbers
from typing import Any

import keras
import tensorflow as tf

from l2l_tf import catalog, optimizer_config, rule_file, rule_sets, sharding
from l2l_tf.layout import (
    TensorLayout,
    check_blockable,
    has_global_cells,
    needs_layout,
    needs_params,
    needs_progress,
    rule_step,
    run_progress,
)
from l2l_tf.rule_base import compiled_function
from l2l_tf.rule_sets import Assignment, RuleSet
from l2l_tf.rules import Rule

SUPPORTED_DTYPES = ("float16", "bfloat16", "float32", "float64")
RULE_WEIGHT_KEY = "rule_weight_"  # the rule's weights in the weights file, after Keras' variables
STATE_DTYPES = ("float32", "bfloat16")


class LearnedOptimizer(keras.optimizers.Optimizer):
    """Applies a frozen coordinatewise learned rule to a model's variables.

    Args:
      rule: an ``l2l_tf.rules.Rule``, e.g. a ``CoordinatewiseLSTM`` (``LearnedOptimizer.load``
        gives a ``LoadedRule``, one rebuilt in Python from a rule file's checked weights), or
        an ``l2l_tf.rule_sets.RuleSet`` of several rules and the assignment of variables to them.
      learning_rate: multiplier of the rule's update (1.0 = as meta-trained).
      state_dtype: storage type of the per-parameter rule state, ``"float32"`` or
        ``"bfloat16"`` (half the memory).
      coordinate_block_size: coordinates per rule call, ``0`` (default) for one call over all
        of them. The values do not depend on it; see "Speed" above for when blocks are faster.
      chunk_size: deprecated name of ``coordinate_block_size`` (a warning says so).
      jit_compile_rule: run each rule step as its own XLA-compiled function, also where Keras
        does not compile the train step (its default on CPU-only machines); ``None``
        (default): as the rule prefers (``prefers_xla``: the mlp family, 2x faster in
        ``benchmarks/optimizer_cost.py``).
      total_steps: the training run's length in optimizer steps, for a rule meta-trained
        knowing how far through its run it is (``progress_input``; required for such a
        rule, refused for others): at step ``t`` the rule reads ``min(t / total_steps, 1)``,
        as a learning-rate schedule would (``t``: Keras' ``iterations``, which steps skipped by
        a ``LossScaleOptimizer`` for overflow do not advance).
      **kwargs: the standard Keras optimizer options (``clipnorm``, ``weight_decay``, ...).
    """

    def __init__(
        self,
        rule: Rule | RuleSet,
        learning_rate: float = 1.0,
        name: str = "learned_optimizer",
        state_dtype: str = "float32",
        coordinate_block_size: int = 0,
        chunk_size: int | None = None,
        jit_compile_rule: bool | None = None,
        total_steps: int | None = None,
        **kwargs: Any,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if state_dtype not in STATE_DTYPES:
            raise ValueError(f"state_dtype must be one of {STATE_DTYPES}, got {state_dtype!r}")
        self.state_dtype = state_dtype
        self.coordinate_block_size = optimizer_config.block_size(coordinate_block_size, chunk_size)
        if not isinstance(rule, (Rule, RuleSet)):
            raise TypeError(
                f"rule must be a CoordinatewiseLSTM or another l2l_tf.rules.Rule, or an l2l_tf.rule_sets.RuleSet"
                f" (LearnedOptimizer.load(path) reads one), got {type(rule).__name__}"
            )
        for member in rule_sets.members(rule):
            check_blockable(member, f"coordinate_block_size={self.coordinate_block_size}", self.coordinate_block_size > 0)
            if state_dtype != "float32" and getattr(member, "state_needs_float32", False):
                raise ValueError(f"a {type(member).__name__} keeps a step count in its state, which {state_dtype}"
                                 " cannot hold exactly; use state_dtype='float32' (the default) for this rule")
        if jit_compile_rule is not None and not isinstance(jit_compile_rule, bool):
            raise ValueError(f"jit_compile_rule must be True, False or None (the rule's choice), got {jit_compile_rule!r}")
        self.jit_compile_rule = jit_compile_rule
        self.total_steps = _check_total_steps(rule, total_steps)
        self._compiled_steps: dict[int, Any] = {}  # XLA-compiled rule steps, by id(rule)
        self.rule = rule
        self.state_size = max(int(member.state_size) for member in rule_sets.members(rule))  # the widest rule's
        self._rule_weights_pending = False  # from_config of a compact config, before load_own_variables
        self._rule_states: list[keras.Variable] = []
        self._rule_names: list[str] = []  # with a RuleSet: each variable's rule (build)

    @classmethod
    def load(cls, path: str, assignment: Assignment | None = None, **kwargs: Any) -> LearnedOptimizer:
        """A ``LearnedOptimizer`` running the rule exported (``train.export``) at ``path``,
        or the shipped rule of that name (``l2l_tf.catalog``: ``"mnist_lstm_momentum"``, ...).
        A multi-rule export assigns variables as stored in it, or by ``assignment`` if given
        (``l2l_tf.rule_sets``).

        Nothing from the file is executed: its metadata and weights are read as data and
        the rule is rebuilt in Python (``l2l_tf.rule_file``)."""
        rule = rule_file.load(catalog.resolve(path))
        if assignment is not None:
            if not isinstance(rule, RuleSet):
                raise ValueError(f"{path} holds a single rule; assignment= is only for multi-rule exports")
            rule = RuleSet(rule.rules, assignment)
        return cls(rule, **kwargs)

    def rule_of(self, variable: Any) -> Rule:
        """The rule that updates ``variable`` (after ``build``)."""
        if not isinstance(self.rule, RuleSet):
            return self.rule
        return self.rule.rules[self._rule_names[self._get_variable_index(variable)]]

    def build(self, variables: list) -> None:
        if self.built:
            return
        self._distribution_strategy = _supported_strategy()
        for variable in variables:
            if variable.dtype not in SUPPORTED_DTYPES:
                raise TypeError(
                    f"LearnedOptimizer cannot train variable {variable.path!r} of dtype"
                    f" {variable.dtype}; supported: {SUPPORTED_DTYPES}"
                )
        super().build(variables)
        if isinstance(self.rule, RuleSet):
            self._rule_names = self.rule.assign([v.path for v in variables], [tuple(v.shape) for v in variables])
        self._rule_states = [
            self.add_variable(
                shape=(math.prod(variable.shape), self.rule_of(variable).state_size),
                dtype=self.state_dtype,
                name=f"{variable.path.replace('/', '_')}_rule_state",
            )
            for variable in variables
        ]

    def _rule_step(
        self, rule: Rule, gradients: tf.Tensor, state: tf.Tensor, layout: TensorLayout | None, params: tf.Tensor | None,
        progress: tf.Tensor | None = None,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """``rule`` on flat float32 gradients (in blocks of ``coordinate_block_size``; rules
        that need the ``layout`` or ``params`` run in one call), with the non-finite policy applied."""
        if self._rule_weights_pending:
            raise ValueError(
                "this LearnedOptimizer was made from a config without its rule's weights (they travel in the"
                " model's weights file): load the model with keras.models.load_model, or make the optimizer"
                " with LearnedOptimizer.load(NAME_OR_PATH) or LearnedOptimizer(rule, ...)"
            )
        sizes = sharding.block_sizes(int(gradients.shape[0]), self.coordinate_block_size)
        if len(sizes) == 1:
            if self.jit_compile_rule or (self.jit_compile_rule is None and getattr(rule, "prefers_xla", False)):
                return self._compiled_step(rule)(gradients, state, params, layout and layout.sizes, progress)
            return self._rule_step_block(rule, gradients, state, layout, params, progress=progress)
        # Global averaging cells average over every coordinate: taken before the blocks.
        context = rule.global_context([rule.split_state(state)]) if has_global_cells(rule) else None
        block_step = functools.partial(self._rule_step_block, rule, context=context, progress=progress)
        return sharding.step_in_blocks(block_step, gradients, state, sizes)

    def _compiled_step(self, rule: Rule) -> Any:
        """``_rule_step_block`` of ``rule`` as an XLA-compiled function of
        ``(gradients, state, params, static layout sizes, progress)``."""
        if id(rule) not in self._compiled_steps:
            def step(gradients: tf.Tensor, state: tf.Tensor, params: Any, sizes: Any,
                     progress: Any) -> tuple[tf.Tensor, tf.Tensor]:
                return self._rule_step_block(rule, gradients, state, sizes and TensorLayout(sizes), params,
                                             progress=progress)

            self._compiled_steps[id(rule)] = compiled_function(step, True)
        return self._compiled_steps[id(rule)]

    def _rule_step_block(
        self, rule: Rule, gradients: tf.Tensor, state: tf.Tensor, layout: TensorLayout | None = None,
        params: tf.Tensor | None = None, context: tf.Tensor | None = None, progress: tf.Tensor | None = None,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        finite = tf.math.is_finite(gradients)
        update, new_state = rule_step(rule, tf.where(finite, gradients, 0.0), state, layout, params, context, progress)
        if update.shape.rank != 1 or new_state.shape.rank != 2 or new_state.shape[1] != rule.state_size:
            raise ValueError(
                f"the rule returned update {update.shape} and state {new_state.shape}; expected [N] and"
                f" [N, {rule.state_size}] (a rule's step must keep its state width)"
            )
        update = tf.where(finite, update, 0.0)
        new_state = tf.where(finite[:, None], new_state, state)
        return update, new_state

    def _backend_update_step(self, grads: list, trainable_variables: list, learning_rate: Any) -> None:
        """The fused update under any supported ``tf.distribute`` strategy.

        As Keras' own TensorFlow-backend optimizers do: the gradients are summed over
        replicas, and the variables are written through ``distribution.extended.update``
        so that every replica's copy gets the same values. Each replica runs the rule
        once, in replica context, on the all-reduced gradients and its own (identical)
        copy of the rule state.
        """
        grads_and_vars = self._all_reduce_sum_gradients(list(zip(grads, trainable_variables)))
        variables = [variable for _, variable in grads_and_vars]
        updates, new_states = self._fused_step([grad for grad, _ in grads_and_vars], variables, learning_rate)
        states = [self._rule_states[self._get_variable_index(v)] for v in variables]
        tf.__internal__.distribute.interim.maybe_merge_call(
            _distributed_write, self._distribution_strategy, variables + states, updates + new_states
        )

    def _fused_step(self, grads: list, trainable_variables: list, learning_rate: Any) -> tuple[list, list]:
        """One call of each rule for all its variables' coordinates (replaces Keras'
        per-variable loop): each variable's additive update (its dtype) and new rule state."""
        flat = [tf.reshape(tf.cast(tf.convert_to_tensor(g), tf.float32), [-1]) for g in grads]
        updates: list[Any] = [None] * len(flat)
        new_states: list[Any] = [None] * len(flat)
        groups: dict[int, tuple[Rule, list[int]]] = {}
        for i, variable in enumerate(trainable_variables):
            rule = self.rule_of(variable)
            groups.setdefault(id(rule), (rule, []))[1].append(i)
        for rule, members in groups.values():
            variables = [trainable_variables[i] for i in members]
            group_updates, group_states = self._group_step(rule, variables, [flat[i] for i in members], learning_rate)
            for i, update, state in zip(members, group_updates, group_states):
                updates[i], new_states[i] = update, state
        return updates, new_states

    def _group_step(self, rule: Rule, variables: list, flat: list, learning_rate: Any) -> tuple[list, list]:
        """One call of ``rule`` on ``variables``' concatenated flat gradients: their updates
        and new rule states."""
        states = [self._rule_states[self._get_variable_index(v)] for v in variables]
        sizes = [int(f.shape[0]) for f in flat]
        state = tf.cast(tf.concat([tf.convert_to_tensor(s) for s in states], axis=0), tf.float32)
        params = None
        if needs_params(rule):
            params = tf.concat([tf.reshape(tf.cast(v, tf.float32), [-1]) for v in variables], axis=0)
        layout = TensorLayout(sizes) if needs_layout(rule) else None
        progress = run_progress(self.iterations, self.total_steps) if needs_progress(rule) else None
        update, new_state = self._rule_step(rule, tf.concat(flat, axis=0), state, layout, params, progress)
        update = update * tf.cast(learning_rate, tf.float32)
        updates = []
        for variable, gradient, part in zip(variables, flat, tf.split(update, sizes)):
            part = tf.cast(tf.reshape(part, variable.shape), variable.dtype)
            decay = self._masked_weight_decay(variable, gradient, learning_rate)
            updates.append(part if decay is None else part - decay)
        return updates, [tf.cast(part, self.state_dtype) for part in tf.split(new_state, sizes)]

    def _masked_weight_decay(self, variable: Any, flat_gradient: tf.Tensor, learning_rate: Any) -> tf.Tensor | None:
        """Keras' decoupled weight decay ``variable * weight_decay * lr``, zero where the
        gradient is not finite (``None`` without weight decay)."""
        if self.weight_decay is None or not self._use_weight_decay(variable):
            return None
        value = tf.convert_to_tensor(variable)
        decay = value * tf.cast(self.weight_decay, value.dtype) * tf.cast(learning_rate, value.dtype)
        finite = tf.reshape(tf.math.is_finite(flat_gradient), variable.shape)
        return tf.where(finite, decay, tf.zeros_like(decay))

    def _apply_weight_decay(self, variables: list) -> None:
        """No-op: weight decay is applied in ``_backend_update_step``, where the gradients
        are known, so coordinates with non-finite gradients are not decayed."""

    def _clip_gradients(self, grads: list) -> list:
        """Keras' clipping on the finite coordinates only; non-finite ones pass through
        unchanged (and are then skipped), so one NaN does not zero a whole norm."""
        if not (self.clipnorm or self.global_clipnorm or self.clipvalue):
            return grads
        dense = [None if g is None else tf.convert_to_tensor(g) for g in grads]
        finite = [None if g is None else tf.math.is_finite(g) for g in dense]
        zeroed = [None if g is None else tf.where(f, g, tf.zeros_like(g)) for g, f in zip(dense, finite)]
        clipped = super()._clip_gradients(zeroed)
        return [None if g is None else tf.where(f, c, g) for g, f, c in zip(dense, finite, clipped)]

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        """Per-variable update on already reduced gradients (Keras' generic path); the
        fused path above is the usual one."""
        (update,), (new_state,) = self._fused_step([gradient], [variable], learning_rate)
        self.assign_add(variable, update)
        self.assign(self._rule_states[self._get_variable_index(variable)], new_state)

    def get_config(self) -> dict[str, Any]:
        """The settings and the rule's architecture (a few hundred bytes). The rule's weights
        are not in the config: they travel with the optimizer's variables in the weights
        file (``save_own_variables``), so ``model.save(".keras")`` and
        ``keras.models.load_model`` round-trip them bit for bit."""
        config = super().get_config()
        config["state_dtype"] = self.state_dtype
        config["coordinate_block_size"] = self.coordinate_block_size
        config["jit_compile_rule"] = self.jit_compile_rule
        if self.total_steps is not None:  # configs of other rules stay as they were
            config["total_steps"] = self.total_steps
        config.update(optimizer_config.rule_to_config(self.rule))
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any], custom_objects: Any = None) -> LearnedOptimizer:
        """The optimizer of ``config``. A config without rule weights (the compact form
        ``get_config`` writes) gives an optimizer whose weights ``load_own_variables`` sets,
        as ``keras.models.load_model`` does; configs of older ``.keras`` files hold the
        weights inline and load whole."""
        config = dict(config)
        if "chunk_size" in config:  # written before the name became coordinate_block_size
            config["coordinate_block_size"] = config.pop("chunk_size")
        rule, pending = optimizer_config.rule_from_config(config)
        if "learning_rate" in config and isinstance(config["learning_rate"], dict):
            config["learning_rate"] = keras.optimizers.schedules.deserialize(config["learning_rate"])
        optimizer = cls(rule, **config)
        optimizer._rule_weights_pending = pending
        return optimizer

    def save_own_variables(self, store: Any) -> None:
        """Keras' optimizer variables, then the rule's weights (``rule_weight_<i>``)."""
        super().save_own_variables(store)
        for index, weight in enumerate(self.rule.weights()):
            store[f"{RULE_WEIGHT_KEY}{index}"] = weight.numpy()

    def load_own_variables(self, store: Any) -> None:
        """Sets the rule's weights (checked against its architecture) and Keras' variables."""
        keys = list(store.keys())
        rule_keys = sorted((k for k in keys if k.startswith(RULE_WEIGHT_KEY)), key=lambda k: int(k[len(RULE_WEIGHT_KEY):]))
        if rule_keys:
            source = "the rule weights in the .keras weights file"
            self.rule = optimizer_config.with_weights(self.rule, [store[k] for k in rule_keys], source)
            self._rule_weights_pending = False
        super().load_own_variables({k: store[k] for k in keys if not k.startswith(RULE_WEIGHT_KEY)})


def _check_total_steps(rule: Rule | RuleSet, total_steps: int | None) -> int | None:
    """``total_steps``, checked against what ``rule`` reads (``LearnedOptimizer``'s argument)."""
    if total_steps is None:
        if rule_sets.reads_progress(rule):
            raise ValueError("this rule was meta-trained knowing how far through its run it is: pass"
                             " total_steps=<the run's optimizer steps> (epochs x steps per epoch)")
        return None
    if isinstance(total_steps, bool) or not isinstance(total_steps, numbers.Integral) or total_steps < 1:
        raise ValueError(f"total_steps must be a positive integer, got {total_steps!r}")
    if not rule_sets.reads_progress(rule):
        raise ValueError("total_steps is only for rules that read their run's progress (progress_input);"
                         " this rule does not: leave it out")
    return int(total_steps)


def _supported_strategy() -> tf.distribute.Strategy:
    """The ``tf.distribute`` strategy in scope, if the optimizer supports it; raises otherwise.

    Supported: no strategy, ``OneDeviceStrategy``, ``MirroredStrategy`` and
    ``MultiWorkerMirroredStrategy`` (mirrored variables, all-reduced gradients). Others
    (``ParameterServerStrategy``, ``TPUStrategy``, ``CentralStorageStrategy``) place or
    update variables differently and are refused rather than trained wrongly.
    """
    strategy = tf.distribute.get_strategy()
    if tf.distribute.has_strategy() and not isinstance(strategy, SUPPORTED_STRATEGIES):
        raise ValueError(
            f"LearnedOptimizer does not support {type(strategy).__name__} yet; train under no strategy,"
            " OneDeviceStrategy, MirroredStrategy or MultiWorkerMirroredStrategy instead"
        )
    return strategy


def _distributed_write(distribution: Any, variables: list, values: list) -> None:
    """Adds ``values[i]`` to model variable ``i`` and assigns rule states, on every
    replica's copy (Keras' ``distribution.extended.update`` path). The first
    ``len(values) // 2`` pairs are model variables, the rest their rule states."""
    half = len(values) // 2
    for i, (variable, value) in enumerate(zip(variables, values)):
        tf_variable = variable.value if isinstance(variable, keras.Variable) else variable
        write = _add if i < half else _assign
        distribution.extended.update(tf_variable, write, args=(value,), group=False)


def _add(variable: tf.Variable, value: tf.Tensor) -> Any:
    return variable.assign_add(value)


def _assign(variable: tf.Variable, value: tf.Tensor) -> Any:
    return variable.assign(value)


SUPPORTED_STRATEGIES = (
    tf.distribute.OneDeviceStrategy,
    tf.distribute.MirroredStrategy,
    tf.distribute.MultiWorkerMirroredStrategy,
)

keras.saving.register_keras_serializable(package="l2l_tf")(LearnedOptimizer)
