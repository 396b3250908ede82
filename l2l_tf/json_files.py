"""Reading small JSON files that may come from someone else, with bounded cost.

Every JSON file l2l_tf reads (rule metadata, ``rule_config.json``, ``run_config.json``,
``results.json``) is small. ``read_json`` refuses a file over a size limit before
reading it, and a document nested deeper than ``MAX_DEPTH``, and reports every failure
as one ``JsonFileError`` naming the file, so no caller sees a ``RecursionError`` or a
``UnicodeDecodeError``.
"""

from __future__ import annotations

import json
import os
from typing import Any

MAX_BYTES = 1 << 20  # 1 MiB: the shipped rule metadata is under 5 KB
MAX_DEPTH = 32


class JsonFileError(ValueError):
    """A JSON file is missing, too large, too deep or not valid JSON."""


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value, computed without recursion."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            pending.extend((child, depth + 1) for child in item)
    return deepest


def read_json(path: str, what: str, max_bytes: int = MAX_BYTES) -> Any:
    """The parsed content of the JSON file ``path`` (``what`` names it in errors)."""
    if not os.path.isfile(path):
        raise JsonFileError(f"{path}: the {what} is missing or not a regular file")
    try:
        size = os.path.getsize(path)
    except OSError as error:
        raise JsonFileError(f"{path}: cannot read the {what} ({error.strerror})") from error
    if size > max_bytes:
        raise JsonFileError(
            f"{path}: the {what} is {size} bytes, over the {max_bytes}-byte limit; this is not a"
            " file l2l_tf wrote (replace it with a good copy)"
        )
    try:
        with open(path, "rb") as f:
            content = f.read(max_bytes + 1)
        if len(content) > max_bytes:
            raise ValueError(f"longer than {max_bytes} bytes")
        value = json.loads(content.decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise JsonFileError(f"{path}: the {what} is not valid JSON ({str(error)[:200]})") from error
    if _depth(value) > MAX_DEPTH:
        raise JsonFileError(f"{path}: the {what} is nested deeper than {MAX_DEPTH} levels; refusing it")
    return value
