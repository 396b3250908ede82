"""Meta-trains a learned optimizer with truncated BPTT: the paper's coordinatewise LSTM
(``--rule=lstm``) or the cheap per-parameter MLP over Adam (``--rule=mlp``, ``l2l_tf.rules_mlp``).

Example:
  l2l-meta-train --problem=quadratic --save_path=runs/quad --num_runs=200
  l2l-meta-train --rule=mlp --problem=mnist --save_path=runs/mnist_mlp --num_runs=200

Writes the best rule (by validation loss) to SAVE_PATH/best, resumable training
checkpoints to SAVE_PATH/train and TensorBoard summaries to --logdir. Re-running with
the same --save_path resumes. With --export_dir the best rule is also exported as a
SavedModel (see train.export).

Several devices or machines (README): --distribution=mirrored uses every GPU of this
machine, --distribution=multi_worker the workers named by the TF_CONFIG environment
variable (run the same command on each); each replica meta-trains on its own runs and
the meta-gradients are averaged. Only the chief (worker 0) writes files.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys

import tensorflow as tf
from absl import flags

from l2l_tf import distributed, export, preprocess, rule_sets, sharding
from l2l_tf.cli import common
from l2l_tf.layout import check_blockable
from l2l_tf.meta_config import (
    GRADIENT_ESTIMATORS,
    META_LOSS_WEIGHTINGS,
    META_OBJECTIVES,
    MetaConfig,
    MetaSchedule,
)
from l2l_tf.problems import Problem
from l2l_tf.rule_sets import RuleSet
from l2l_tf.rules import Rule, RuleConfig
from l2l_tf.rules_mlp import MLPRuleConfig
from l2l_tf.run_config import RunConfig
from l2l_tf.training import IncompatibleResumeError, TrainingOptions, meta_train

common.define_problem_flags()
flags.adopt_module_key_flags(common)
flags.DEFINE_string("save_path", None, "Output folder: best rule, training checkpoints, logs.")
flags.DEFINE_string(
    "validation_problem", None,
    "Validate on this problem or task list (tasks:NAME, e.g. held-out tasks) instead of --problem's;"
    " several problems are scored by their losses relative to each one's step-0 loss (l2l_tf.validation).",
)
flags.DEFINE_string("logdir", None, "TensorBoard folder (default SAVE_PATH/logs).")
flags.DEFINE_string("export_dir", None, "If set, export the best rule as a SavedModel here at the end.")
flags.DEFINE_string(
    "init_optimizer", None,
    "Warm start: initial rule weights from this rule (an exported rule folder, a meta_train"
    " --save_path's best rule, or a rule folder), e.g. to continue with a lower"
    " --meta_learning_rate. Architecture flags must match.",
)
common.define_deprecated_alias("init_from", "init_optimizer")
flags.DEFINE_integer(
    "num_runs", 100,
    "Optimizee runs to meta-train on (one run = --num_steps steps); with --distribution, epochs of one run per replica.",
    lower_bound=1,
)
flags.DEFINE_alias("num_epochs", "num_runs")  # the flag's first name; commands in experiments/ use it
flags.DEFINE_integer("num_steps", 100, "Optimizee steps per run.", lower_bound=1)
flags.DEFINE_integer(
    "min_num_steps", 0,
    "If > 0: sampled horizons; each run's length is drawn log-uniformly from [--min_num_steps, --num_steps]"
    " (a multiple of --unroll_length, fixed by the run's seed). 0: every run has --num_steps steps."
    " Validation still runs --num_steps steps.",
    lower_bound=0,
)
flags.DEFINE_integer("unroll_length", 20, "Steps per truncated-BPTT unroll; must divide --num_steps.", lower_bound=1)
flags.DEFINE_float("meta_learning_rate", 1e-3, "Adam learning rate of the meta-optimizer.", lower_bound=0.0)
flags.DEFINE_float("meta_gradient_clip_norm", None, "Clip the meta-gradient's global norm to this (off if unset).")
flags.DEFINE_enum(
    "meta_loss_weighting", "uniform", list(META_LOSS_WEIGHTINGS),
    "Weights of the optimizee losses in the meta-loss: uniform (the paper), linear in the step"
    " (emphasises the final loss; used for the shipped MNIST rules) or last_quarter (EXPERIMENTAL:"
    " only the last quarter of the steps; made the MNIST rule worse, experiments/mnist/NOTES.md).",
)
flags.DEFINE_enum(
    "meta_objective", "loss", list(META_OBJECTIVES),
    "Each step's term of the meta-loss: the optimizee loss (the paper) or log_loss (EXPERIMENTAL:"
    " its log, weighing late, small losses as much as early ones; never improved on its starting"
    " MNIST rule in validation, experiments/mnist/NOTES.md).",
)
flags.DEFINE_integer(
    "recompute_segment", 0,
    "If > 0, recompute the activations of segments of this many steps in the backward pass"
    " (tf.recompute_grad; must divide --unroll_length): several times less unroll memory for"
    " about one more forward pass per step, for long --unroll_length. 0: store everything.",
    lower_bound=0,
)
flags.DEFINE_integer(
    "meta_gradient_accumulation", 1,
    "EXPERIMENTAL: average the meta-gradients of this many consecutive unrolls per meta-update"
    " (with --unroll_length=--num_steps: a meta-batch of that many runs). Meta-batches of 4 and 8"
    " MNIST runs did not beat single runs (experiments/mnist/NOTES.md); 1: off.",
    lower_bound=1,
)
flags.DEFINE_integer(
    "coordinate_blocks", 1,
    "CPU speed-up: run the rule on this many blocks of coordinates as independent chains, with one"
    " intra-op and this many inter-op threads (set it to the number of cores; see benchmarks/RESULTS.md;"
    " LearnedOptimizer's coordinate_block_size is the same idea, by block size). Same results; 1: off"
    " (the choice on GPU).",
    lower_bound=1,
)
common.define_deprecated_alias("coordinate_shards", "coordinate_blocks")
flags.DEFINE_enum(
    "gradient_estimator", "tbptt", list(GRADIENT_ESTIMATORS),
    "How meta-gradients are estimated: tbptt, truncated backpropagation through each unroll (the paper);"
    " pes, persistent evolution strategies (Vicol et al. 2021; l2l_tf.pes): unbiased over the whole run,"
    " forward passes only, 2 --es_pairs + 1 unrolls per truncation, one device.",
)
flags.DEFINE_integer("es_pairs", 4, "With --gradient_estimator=pes: antithetic pairs per truncation.", lower_bound=1)
flags.DEFINE_float("es_std", 0.01, "With --gradient_estimator=pes: std of the weight perturbations.", lower_bound=1e-12)
flags.DEFINE_boolean("second_derivatives", False, "Backpropagate through the optimizee gradients (Hessian terms).")
flags.DEFINE_boolean("jit_compile", False, "Compile each unroll with XLA (off by default: slower on CPU, see BUILD.md).")
flags.DEFINE_integer("seed", 0, "Seed of the rule's initial weights and the training runs.", lower_bound=0)
flags.DEFINE_enum(
    "rule", "lstm", ["lstm", "mlp"],
    "Rule family: lstm (the paper's coordinatewise LSTM, 80 floats of state per parameter) or mlp (a"
    " per-parameter MLP correcting Adam's step, 5 floats, 6 with --mlp_step_adaptation_rate; starts as Adam at"
    " --mlp_base_step).",
)
flags.DEFINE_integer("mlp_hidden_size", 8, "--rule=mlp: hidden units per layer.", lower_bound=1)
flags.DEFINE_integer("mlp_num_hidden_layers", 1, "--rule=mlp: hidden layers.", lower_bound=1)
flags.DEFINE_float("mlp_base_step", 1e-3, "--rule=mlp: the nominal (Adam) step size.", lower_bound=1e-12)
flags.DEFINE_float("mlp_max_log_scale", 2.3, "--rule=mlp: the learned step factor lies in [e^-x, e^x].",
                   lower_bound=1e-6)
flags.DEFINE_boolean("mlp_use_params", True, "--rule=mlp: feed the parameter values to the MLP.")
flags.DEFINE_float("mlp_step_adaptation_rate", 0.0,
                   "--rule=mlp: each tensor's log step factor moves by this times the cosine between its gradient"
                   " and its previous Adam direction (0: off; one more float of state).", lower_bound=0.0)
flags.DEFINE_float("mlp_max_adapted_log_scale", 2.3, "--rule=mlp: the adapted step factor lies in [e^-x, e^x].",
                   lower_bound=1e-6)
flags.DEFINE_integer("num_layers", 2, "LSTM layers.", lower_bound=1)
flags.DEFINE_integer("hidden_size", 20, "LSTM units per layer.", lower_bound=1)
flags.DEFINE_enum("preprocessing", preprocess.LOG_SIGN, preprocess.PREPROCESSINGS, "Gradient preprocessing.")
flags.DEFINE_float("preprocessing_p", 10.0, "Exponent p of the log/sign preprocessing.", lower_bound=1e-6)
flags.DEFINE_float("output_scale", 0.1, "Multiplier of the rule's output.", lower_bound=1e-12)
flags.DEFINE_list(
    "momentum_decays", [],
    "Extension beyond the paper: decay rates of per-coordinate gradient averages fed to the LSTM"
    " besides the gradient, e.g. 0.5,0.9,0.99 (empty: the paper's rule). With --init_optimizer a rule"
    " without them, the new inputs start with zero weight.",
)
flags.DEFINE_integer(
    "gac_cells", 0,
    "The paper's LSTM+GAC: this many units of every LSTM layer are global averaging cells, whose"
    " recurrent input is their mean over all coordinates (information shared across coordinates, one"
    " step behind; enough for e.g. gradient-norm clipping). 0: the plain coordinatewise LSTM.",
    lower_bound=0,
)
flags.DEFINE_boolean(
    "progress_input", False,
    "Extension beyond the paper: the LSTM also reads how far through its run the optimizee is (t / T,"
    " the step over the run's length; 1 past it), so one rule can learn to end runs of different"
    " lengths well. Users then pass LearnedOptimizer(total_steps=...). With --init_optimizer a rule"
    " without it, the new input starts with zero weight.",
)
flags.DEFINE_enum(
    "rule_set", "single", list(rule_sets.RULE_SETS),
    "single: one rule for every parameter. conv_fc (the paper's conv-net optimizer): two rules of the"
    " architecture above, trained jointly, one for the convolution kernels and one for every other"
    " parameter (biases, BatchNorm, dense layers); see l2l_tf/rule_sets.py. With --init_optimizer a"
    " single rule, both start from it.",
)
flags.DEFINE_enum(
    "distribution", "none", list(distributed.DISTRIBUTIONS),
    "none: one device. mirrored: every GPU of this machine (tf.distribute.MirroredStrategy)."
    " multi_worker: the workers named by the TF_CONFIG environment variable"
    " (MultiWorkerMirroredStrategy; start the same command on each). Each replica meta-trains on"
    " its own runs; the meta-gradients are averaged (a meta-batch of one run per replica).",
)
flags.DEFINE_integer("validation_every", 20, "Validate (and keep the best rule) every N runs.", lower_bound=1)
flags.DEFINE_integer("validation_runs", 8, "Held-out optimizee runs per validation.", lower_bound=1)
flags.DEFINE_integer("checkpoint_every", 10, "Write a resumable checkpoint every N runs.", lower_bound=1)
flags.DEFINE_integer("log_every", 10, "Log a progress line every N runs.", lower_bound=1)
flags.mark_flag_as_required("save_path")

FLAGS = flags.FLAGS
# Settings whose flag was renamed: run_config.json and MetaConfig keep the first name.
# Every other setting (RuleConfig, MetaConfig, TrainingOptions, RunConfig fields) is the flag
# of its own name.
FLAG_OF_SETTING = {"init_from": "init_optimizer", "coordinate_shards": "coordinate_blocks", "num_epochs": "num_runs"}


def flag_value(setting: str):
    """The value of the flag that gives ``setting`` (a run_config key or MetaConfig field)."""
    return FLAGS[FLAG_OF_SETTING.get(setting, setting)].value


def run_config(problem_description: dict) -> RunConfig:
    """The run's settings (stored with checkpoints and exported rules), from the flags by
    field name; ``num_replicas`` is set by the training loop."""
    command = common.command_line()
    return RunConfig.from_settings(flag_value, num_replicas=1, command=command, problem_description=problem_description)


def rule_config_from_flags() -> RuleConfig | MLPRuleConfig:
    """The rule architecture the flags give; a usage error naming the flag otherwise."""
    if FLAGS.rule == "mlp":
        if FLAGS.progress_input:
            common.usage_error("--progress_input is an input of the LSTM rule; leave it out with --rule=mlp")
        names = [field.name for field in dataclasses.fields(MLPRuleConfig) if f"mlp_{field.name}" in FLAGS]
        try:
            return MLPRuleConfig(**{name: FLAGS[f"mlp_{name}"].value for name in names})
        except ValueError as error:
            common.usage_error(f"{error}; fix the flag --mlp_{str(error).split()[0]}")
    try:
        decays = tuple(float(b) for b in FLAGS.momentum_decays)
    except ValueError:
        common.usage_error(f"--momentum_decays must be numbers, got {','.join(FLAGS.momentum_decays)!r}")
    values = {field.name: flag_value(field.name) for field in dataclasses.fields(RuleConfig)}
    try:
        return RuleConfig(**{**values, "momentum_decays": decays})
    except ValueError as error:
        common.usage_error(f"{error}; fix the flag --{str(error).split()[0]}")
        raise  # unreachable


def check_output_flags() -> None:
    """Usage errors, before any work, for output paths that cannot be written or whose
    replacement would lose data."""
    if FLAGS.export_dir:
        common.require_export_target(FLAGS.export_dir, (FLAGS.save_path,))
    common.require_writable_dir(FLAGS.save_path, "save_path")
    if FLAGS.logdir:
        common.require_writable_dir(FLAGS.logdir, "logdir")


def configs_from_flags() -> tuple[RuleConfig, MetaConfig, TrainingOptions]:
    """The rule, meta-training and loop settings named by the flags (usage errors if invalid)."""
    if FLAGS.num_steps % FLAGS.unroll_length:
        common.usage_error(
            f"--unroll_length={FLAGS.unroll_length} must divide --num_steps={FLAGS.num_steps}"
        )
    if FLAGS.min_num_steps and FLAGS.distribution != "none":
        common.usage_error("--min_num_steps (sampled horizons) runs on one device; pass --distribution=none or --min_num_steps=0")
    if FLAGS.gradient_estimator == "pes" and FLAGS.distribution != "none":
        common.usage_error("--gradient_estimator=pes runs on one device; pass --distribution=none")
    rule_config = rule_config_from_flags()
    try:
        schedule = MetaSchedule(**{field.name: flag_value(field.name) for field in dataclasses.fields(MetaSchedule)})
        names = [field.name for field in dataclasses.fields(MetaConfig) if field.name != "schedule"]
        meta_config = MetaConfig(**{name: flag_value(name) for name in names}, schedule=schedule)
    except ValueError as error:
        common.usage_error(f"{error}; fix the flag named in it")
    options = TrainingOptions(
        **{field.name: flag_value(field.name) for field in dataclasses.fields(TrainingOptions) if field.name in FLAGS}
    )
    return rule_config, meta_config, options


def build_rule(rule_config: RuleConfig | MLPRuleConfig, strategy: tf.distribute.Strategy | None) -> Rule | RuleSet:
    """A fresh rule or rule set (--rule, --rule_set; in the strategy's scope: mirrored),
    warm-started with --init_optimizer if set."""
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        rule = rule_sets.make(FLAGS.rule_set, rule_config, seed=FLAGS.seed)
    if FLAGS.init_optimizer:
        try:
            start = export.load_any(FLAGS.init_optimizer)
        except (FileNotFoundError, ValueError) as error:
            common.usage_error(str(error))
        try:
            rule_sets.warm_start(rule, start)
        except ValueError as error:
            common.usage_error(f"--init_optimizer={FLAGS.init_optimizer}: {error}; pass matching architecture flags")
    return rule


def problems_from_flags(meta_config: MetaConfig) -> tuple[list[Problem], list[Problem] | None]:
    """The problems to meta-train on (--problem: one, or a task list's) and to validate on
    (--validation_problem; ``None``: the same); usage errors if unavailable."""
    problems = common.build_problems()
    validation = common.build_problems(FLAGS.validation_problem) if FLAGS.validation_problem else None
    for problem in problems:
        try:
            sharding.shard_sizes(problem.num_coordinates, meta_config.schedule.coordinate_shards)
        except ValueError as error:
            common.usage_error(f"--coordinate_blocks={FLAGS.coordinate_blocks}: {error}; use the number of CPU cores")
    return problems, validation


def check_blocks(rule: Rule | RuleSet, meta_config: MetaConfig) -> None:
    """A usage error if --coordinate_blocks would cut a rule that reduces over whole tensors."""
    members = rule.rules.values() if isinstance(rule, RuleSet) else [rule]
    try:
        for member in members:
            check_blockable(member, f"--coordinate_blocks={FLAGS.coordinate_blocks}", meta_config.schedule.coordinate_shards > 1)
    except ValueError as error:
        common.usage_error(str(error))


def describe(problems: list[Problem]) -> dict:
    """The problem description stored with the run: the problem's, or the task list's."""
    if len(problems) == 1:
        return problems[0].describe()
    return {"name": FLAGS.problem, "problems": [problem.describe() for problem in problems]}


def announce(rule_config: RuleConfig | MLPRuleConfig, rule: Rule | RuleSet, problems: list[Problem],
             strategy: tf.distribute.Strategy | None) -> None:
    """The line that says what this job meta-trains."""
    sizes = sorted({problem.num_coordinates for problem in problems})
    if len(problems) == 1:
        what = f"{problems[0].name} ({sizes[0]} coordinates)"
    else:
        what = f"{FLAGS.problem} ({len(problems)} problems of {sizes[0]} to {sizes[-1]} coordinates)"
    rules = f" ({'/'.join(rule.names)} rules)" if isinstance(rule, RuleSet) else ""
    rules += f" with {rule_config.gac_cells} global averaging cells per layer" if getattr(rule_config, "gac_cells", 0) else ""
    rules += ", reading its run's progress" if getattr(rule_config, "progress_input", False) else ""
    architecture = (f"{rule_config.num_hidden_layers}x{rule_config.hidden_size} MLP" if FLAGS.rule == "mlp"
                    else f"{rule_config.num_layers}x{rule_config.hidden_size} LSTM")
    print(
        f"meta-training a {architecture} rule{rules}"
        f" ({rule.num_meta_parameters()} weights) on {what}, {FLAGS.num_runs} runs of {FLAGS.num_steps} steps"
        + (f", {strategy.num_replicas_in_sync} replicas" if strategy is not None else ""),
        flush=True,
    )


def run(argv: list[str]) -> None:
    if len(argv) > 1:
        common.usage_error(f"unexpected arguments {argv[1:]}")
    common.warn_deprecated_flags()
    rule_config, meta_config, options = configs_from_flags()
    if meta_config.schedule.coordinate_shards > 1:
        sharding.configure_cpu_threads(meta_config.schedule.coordinate_shards)
    try:
        strategy = distributed.make_strategy(FLAGS.distribution)
    except distributed.DistributionError as error:
        common.usage_error(str(error))
    chief = distributed.is_chief(strategy)
    if chief:  # the other workers write nothing under --save_path
        check_output_flags()
    problems, validation_problems = problems_from_flags(meta_config)
    rule = build_rule(rule_config, strategy)
    check_blocks(rule, meta_config)
    announce(rule_config, rule, problems, strategy)
    config = run_config(describe(problems))
    try:
        summary = meta_train(
            rule, problems, meta_config, options, FLAGS.save_path, config, FLAGS.logdir,
            log=lambda line: print(line, flush=True), strategy=strategy, validation_problems=validation_problems,
        )
    except IncompatibleResumeError as error:
        common.usage_error(f"--save_path={FLAGS.save_path}: {error}")
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) as error:
        first_line = str(error).strip().splitlines()[0][:300]
        print(f"FATAL lost contact with another worker ({first_line}); restart every worker with the same"
              " command: the job resumes from the last checkpoint", file=sys.stderr)
        sys.exit(1)
    print("summary: " + json.dumps(summary.to_dict()), flush=True)
    if FLAGS.export_dir and chief:
        try:
            export.export_checkpoint(FLAGS.save_path, FLAGS.export_dir)
        except (FileNotFoundError, ValueError) as error:
            common.usage_error(f"{error} (the trained run is intact; export it with train.export)")
        print(f"exported the best rule to {FLAGS.export_dir}", flush=True)


def main() -> None:
    """The ``l2l-meta-train`` console script (``python -m train.meta_train`` in a checkout)."""
    common.run_program(run, __name__)


if __name__ == "__main__":
    main()
