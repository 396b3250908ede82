"""l2l_tf: learned optimizers for TensorFlow/Keras (Andrychowicz et al., 2016).

The distribution installs one top-level package, ``l2l_tf``. The shipped rules in the
repository's ``saved_optimizers/`` (the one copy in git) are installed as its package data
``l2l_tf/saved_optimizers`` (``LearnedOptimizer.load("mnist_lstm")``). The binaries are
console scripts; in a checkout ``python -m train.X`` runs the same programs.
"""

from setuptools import find_packages, setup

SHIPPED_RULES = "l2l_tf.saved_optimizers"
CONSOLE_SCRIPTS = {
    "l2l-meta-train": "meta_train",
    "l2l-evaluate": "evaluate",
    "l2l-evaluate-suite": "evaluate_suite",
    "l2l-export": "export",
    "l2l-fit-keras": "fit_keras",
    "l2l-stylize": "stylize",
    "l2l-neural-art-grid": "neural_art_grid",
    "l2l-report": "report",
    "l2l-optimizers": "optimizers",
}

setup(
    name="l2l_tf",
    version="0.1.0",
    description="Learning to learn by gradient descent by gradient descent, as a Keras optimizer",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["l2l_tf", "l2l_tf.*"]) + [SHIPPED_RULES],
    package_dir={SHIPPED_RULES: "saved_optimizers"},
    package_data={SHIPPED_RULES: ["*/*.pb", "*/*.md", "*/*.png", "*/assets/*", "*/variables/*"]},
    entry_points={
        "console_scripts": [f"{script}=l2l_tf.cli.{module}:main" for script, module in CONSOLE_SCRIPTS.items()],
    },
    install_requires=[
        "tensorflow==2.21.*",
        "tensorflow-datasets==4.9.10",
        "importlib_resources",  # imported by tensorflow-datasets 4.9.10 but not declared by it
        "tensorboard",  # tf.summary needs it for meta_train's TensorBoard logs
        "absl-py",
        "numpy",
        "matplotlib",
    ],
    extras_require={"test": ["pytest", "hypothesis"]},
)
