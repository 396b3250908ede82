"""Flags and helpers shared by the l2l_tf programs (``l2l_tf.cli``)."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable

from absl import app, flags, logging

from l2l_tf import baselines, catalog, export
from l2l_tf.problems import PROBLEM_NAMES, Problem, is_task_list, make_problems
from l2l_tf.problems.custom import load_problem
from l2l_tf.problems.data import SOURCES, TFDS, DataUnavailableError

# TensorFlow's Python INFO logs (checkpoint sharding etc.) would bury the progress lines.
logging.set_verbosity(logging.WARNING)


def define_problem_flags() -> None:
    """Defines --problem, --data_source and --data_dir; the calling binary shows them in
    --helpshort (``flags.adopt_module_key_flags``: absl lists only a main module's own flags)."""
    flags.DEFINE_string(
        "problem", "quadratic",
        f"Optimizee family: one of {', '.join(PROBLEM_NAMES)}; for meta_train also tasks:NAME, a task"
        " list (a task distribution: each run draws one of its problems; l2l_tf.problems.task_lists).",
    )
    flags.register_validator(
        "problem", lambda name: name in PROBLEM_NAMES or is_task_list(name),
        f"must be one of {list(PROBLEM_NAMES)} or tasks:NAME (a task list)",
    )
    define_data_flags()
    flags.DEFINE_string(
        "problem_fn", None,
        "Your own optimizee instead of --problem: MODULE:FUNCTION (importable from the working folder)"
        " returning an l2l_tf Problem, e.g. l2l_tf.KerasProblem(build_model, (x, y)).",
    )
    flags.DEFINE_string(
        "vgg_weights", None,
        "neural_art problems: VGG19 weights, an .npz file (default DATA_DIR/vgg19/vgg19_notop_q8.npz)"
        " or 'imagenet' (Keras downloads them; needs network access once).",
    )


def define_data_flags() -> None:
    """Defines --data_source and --data_dir (where digits and other data come from)."""
    flags.DEFINE_enum(
        "data_source", TFDS, SOURCES,
        "Where the data comes from: 'tfds' (tfds.load of MNIST or, for the cifar* problems,"
        " CIFAR-10; needs network the first time) or 'idx' (local MNIST IDX files in --data_dir).",
    )
    flags.DEFINE_string(
        "data_dir", None,
        "With --data_source=idx: folder of the four MNIST IDX files (e.g."
        " ../shared/data/mnist-10k). With tfds: TFDS's data_dir. With neural_art problems: the folder"
        " with content/ and style/ images (default $L2L_NEURAL_ART_DIR or ../shared/data/neural-art).",
    )


def define_evaluation_flags() -> None:
    """Defines the flags of evaluating a rule against tuned baselines: --optimizer, --baselines,
    --learning_rates, --tuning_seeds and --jit_compile."""
    flags.DEFINE_string(
        "optimizer", None,
        "Exported rule (SavedModel folder), meta_train --save_path, or a shipped rule's name (l2l-optimizers);"
        " unset: only the baselines run.",
    )
    flags.DEFINE_integer("tuning_seeds", 5, "Runs per learning rate when tuning baselines.", lower_bound=1)
    flags.DEFINE_list("baselines", ["sgd", "nag", "rmsprop", "adam"], "Baselines to tune and run.")
    flags.DEFINE_list("learning_rates", [str(lr) for lr in baselines.DEFAULT_LEARNING_RATES], "Learning-rate grid for tuning.")
    flags.DEFINE_boolean("jit_compile", True, "Compile trajectories with XLA.")


# "Where a rule is" has one flag name in every binary, --optimizer (--init_optimizer for
# meta_train's warm start); older names still work as deprecated aliases.
DEPRECATED_ALIASES: dict[str, str] = {}


def define_deprecated_alias(old: str, new: str) -> None:
    """``--old`` keeps working as ``--new``; ``warn_deprecated_flags`` says so when used."""
    flags.DEFINE_alias(old, new)
    flags.FLAGS[old].help = f"Deprecated alias of --{new}."
    DEPRECATED_ALIASES[old] = new


def warn_deprecated_flags() -> None:
    """One warning line per deprecated alias given; a usage error if a flag is given under
    both its names."""
    values = flags.FLAGS
    for old, new in DEPRECATED_ALIASES.items():
        if old in values and values[old].present:
            if values[new].present > values[old].present:
                usage_error(f"--{old} is a deprecated alias of --{new}; pass only --{new}")
            print(f"WARNING: --{old} is deprecated; use --{new} (same meaning)", file=sys.stderr, flush=True)


def build_problem() -> Problem:
    """The problem named by the flags; data problems exit with a usage error if unavailable."""
    if is_task_list(flags.FLAGS.problem) and not flags.FLAGS.problem_fn:
        usage_error(f"--problem={flags.FLAGS.problem} names a task list; this program takes one problem")
    return build_problems()[0]


def build_problems(name: str | None = None) -> list[Problem]:
    """The problems ``name`` (default the flag --problem) names: one, or a task list's;
    --problem_fn's problem when given. A usage error if the data is unavailable."""
    values = flags.FLAGS
    name = name or values.problem
    try:
        if values.problem_fn:
            return [load_problem(values.problem_fn)]
        return make_problems(name, values.data_source, values.data_dir, values.vgg_weights)
    except (DataUnavailableError, FileNotFoundError, ValueError) as error:
        hint = " (flags: --data_source=idx --data_dir=DIR)" if "source 'idx'" in str(error) else ""
        usage_error(f"--problem={name} --data_source={values.data_source} --data_dir={values.data_dir}: {error}{hint}")
        raise  # unreachable


def parse_baselines_and_rates(names: list[str], learning_rates: list[str]) -> list[float]:
    """The --learning_rates grid as numbers; a usage error for unknown --baselines or a bad grid."""
    unknown = sorted(set(names) - set(baselines.BASELINES))
    if unknown:
        usage_error(f"--baselines: unknown {unknown}; choose from {sorted(baselines.BASELINES)}")
    try:
        rates = [float(lr) for lr in learning_rates]
    except ValueError:
        usage_error(f"--learning_rates must be numbers, got {learning_rates}")
    if any(not (lr > 0 and math.isfinite(lr)) for lr in rates):
        usage_error(f"--learning_rates must all be finite numbers > 0, got {learning_rates}")
    return rates


def usage_error(message: str) -> None:
    """Exits with status 2 and a one-line message, like absl does for bad flags."""
    print(f"FATAL Flags/input error: {message}\nPass --helpshort for usage.", file=sys.stderr)
    sys.exit(2)


def require_dir_parent_writable(path: str, flag: str) -> None:
    """Creates the parent folder of ``path`` if needed; a usage error if that is impossible."""
    _make_writable_dir(os.path.dirname(os.path.abspath(path)) or ".", path, flag, "parent folder")


def _make_writable_dir(folder: str, path: str, flag: str, what: str) -> None:
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        usage_error(f"--{flag}={path}: cannot create {what} {folder!r} ({error.strerror})")
    if not os.access(folder, os.W_OK):
        usage_error(f"--{flag}={path}: {what} {folder!r} is not writable")


def require_writable_dir(path: str, flag: str) -> None:
    """Creates folder ``path`` now, before any computation; a usage error if it is a file,
    under a file, or not writable (so no result is computed and then lost)."""
    if os.path.exists(path) and not os.path.isdir(path):
        usage_error(f"--{flag}={path} is a file, not a folder; pass a folder")
    _make_writable_dir(path, path, flag, "the folder")


def require_export_target(export_dir: str, protected: tuple[str, ...]) -> None:
    """A usage error, before any work, if exporting to ``export_dir`` could lose data."""
    from l2l_tf import export

    try:
        export.check_export_target(export_dir, protected)
    except export.UnsafeExportTargetError as error:
        usage_error(f"--export_dir={export_dir}: {error}")


def run_program(run: Callable[[list[str]], None], module_name: str) -> None:
    """Runs ``run`` under ``absl.app`` with the flags of ``module_name`` (and the shared
    ones it adopted) listed by ``--helpshort``: absl lists the flags of the main module,
    which is a console script or a ``train/`` shim, not the module defining them."""
    for flag in flags.FLAGS.get_key_flags_for_module(module_name):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    app.run(run)


def command_line() -> str:
    """The command that started this program, as a user would type it again."""
    program = os.path.basename(sys.argv[0])
    if program.endswith(".py"):  # python -m train.NAME in a checkout
        program = "python -m train." + program[: -len(".py")]
    return " ".join([program, *sys.argv[1:]])


def load_learned(path: str):
    """The rule of an exported rule folder or shipped rule name (read as data, nothing from
    it executed), else the best rule of a training checkpoint."""
    return export.load_any(catalog.resolve(path))


def load_learned_or_exit(path: str):
    """``load_learned``, with a one-line usage error if ``path`` holds no loadable rule."""
    try:
        return load_learned(path)
    except (export.RuleLoadError, FileNotFoundError, ValueError) as error:
        usage_error(str(error))
