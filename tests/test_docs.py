"""The docs are accurate: README's runnable snippets run, and every benchmark figure it quotes
is what benchmarks/doc_numbers.py derives from the stored JSON."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest
from conftest import REPO, subprocess_env

README = pathlib.Path(REPO, "README.md").read_text(encoding="utf-8")
RUNNABLE = [block for block in re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL) if "# (runs as is)" in block]


def test_readme_has_the_runnable_snippets():
    assert len(RUNNABLE) == 2  # the top snippet (fit on your model) and meta-training on your own model


@pytest.mark.parametrize("index", range(len(RUNNABLE)))
def test_readme_snippet_runs_as_is(index, tmp_path):
    result = subprocess.run([sys.executable, "-c", RUNNABLE[index]], check=False, capture_output=True, text=True,
                            cwd=tmp_path, env=subprocess_env(), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]


def test_readme_quotes_the_benchmark_json():
    result = subprocess.run([sys.executable, "-m", "benchmarks.doc_numbers"], check=False, capture_output=True,
                            text=True, cwd=REPO, env=subprocess_env(), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) >= 10
    missing = [line for line in lines if line not in README]
    assert not missing, "README.md differs from python -m benchmarks.doc_numbers:\n" + "\n".join(missing)


def test_readme_states_no_stale_state_size():
    assert "[size, 80]" not in README and "320 bytes of optimizer state per parameter" not in README
