"""The repository itself: what the docs point at exists, the README table is what the stored
evaluations say, and the tree stays lean (no event files, no machine-specific paths)."""

from __future__ import annotations

import glob
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
from conftest import REPO

TOP_LEVEL = ("experiments", "saved_optimizers", "benchmarks", "l2l_tf", "train", "tests")
MARKDOWN_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
BACKTICKED = re.compile(r"`([^`\s]+)`")
MACHINE_PATH = re.compile(rb"(?<![\w.~-])/(?:work|root|home|Users|tmp|mnt|scratch)/")
EXPERIMENTS_LIMIT_BYTES = 8 * 1024 * 1024


def tracked_files() -> list[str]:
    if shutil.which("git") is None or not os.path.exists(os.path.join(REPO, ".git")):
        pytest.skip("not a git checkout")
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [path for path in listed.decode().split("\0") if path and os.path.exists(os.path.join(REPO, path))]


def markdown_files() -> list[str]:
    return [path for path in tracked_files() if path.endswith(".md")]


def test_every_relative_link_and_repository_path_in_the_markdown_files_exists():
    missing = []
    for doc in markdown_files():
        text = pathlib.Path(REPO, doc).read_text(encoding="utf-8")
        folder = os.path.dirname(doc)
        for target in MARKDOWN_LINK.findall(text):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            if not os.path.exists(os.path.join(REPO, folder, target.split("#")[0])):
                missing.append(f"{doc}: link {target}")
        for token in BACKTICKED.findall(text):
            if token.split("/")[0] in TOP_LEVEL and "/" in token and not glob.glob(os.path.join(REPO, token)):
                missing.append(f"{doc}: path `{token}`")
    assert not missing, "referenced but missing:\n" + "\n".join(missing)


def test_the_readme_results_table_is_what_the_stored_evaluations_say():
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "experiments/results_table.py"], cwd=REPO, capture_output=True,
                            text=True, env=env, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 20  # header, rule, 18 evaluations
    readme = pathlib.Path(REPO, "README.md").read_text(encoding="utf-8").splitlines()
    start = readme.index(lines[0])
    assert readme[start:start + len(lines)] == lines


def test_no_event_files_or_machine_specific_paths_are_tracked_and_experiments_stay_small():
    files = tracked_files()
    assert not [path for path in files if "events.out.tfevents" in path]
    for ignored in ("experiments/x/run/logs/events.out.tfevents.1.host.1.v2", "runs/quadratic/best/rule.index"):
        assert subprocess.run(["git", "check-ignore", "-q", ignored], cwd=REPO, check=False).returncode == 0, ignored
    provenance = [p for p in files if p.startswith(("experiments/", "saved_optimizers/")) or p.endswith(".md")]
    with_paths = [p for p in provenance if MACHINE_PATH.search(pathlib.Path(REPO, p).read_bytes())]
    assert not with_paths, f"absolute machine paths in {with_paths}: make them relative to the repository"
    size = sum(os.path.getsize(os.path.join(REPO, p)) for p in files if p.startswith("experiments/"))
    assert size < EXPERIMENTS_LIMIT_BYTES, (
        f"experiments/ holds {size / 2**20:.1f} MiB: store curves as curves.npz and drop superseded material")
