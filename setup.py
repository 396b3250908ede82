"""l2l_tf: learned optimizers for TensorFlow/Keras (Andrychowicz et al., 2016)."""

from setuptools import find_packages, setup

setup(
    name="l2l_tf",
    version="0.1.0",
    description="Learning to learn by gradient descent by gradient descent, as a Keras optimizer",
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["l2l_tf", "l2l_tf.*", "train", "train.*", "benchmarks", "benchmarks.*"]),
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
