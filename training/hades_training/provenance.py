"""Where a model came from: the code's git commit and a hash of the exact data.

One place for both, used by training (MLflow params, checkpoints), export (the
bundle's lineage) and the Azure job (its tags)."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

#: The training package's own checkout: the default for "which code is this".
CODE_DIR = Path(__file__).resolve().parent


def _git(directory: Path, *args: str) -> str | None:
    """stdout of ``git -C directory ARGS``, or None when git is missing, fails or hangs."""
    try:
        r = subprocess.run(
            ["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def git_state(directory: Path = CODE_DIR) -> tuple[str, bool | None] | None:
    """``(commit, dirty)`` of the checkout holding ``directory``; None outside a git checkout.

    ``dirty`` means tracked files differ from the commit (untracked files do not count);
    it is None when git could not say."""
    commit = _git(directory, "rev-parse", "--verify", "HEAD")
    if not commit:
        return None
    status = _git(directory, "status", "--porcelain", "--untracked-files=no")
    return commit, (None if status is None else bool(status))


def git_commit(directory: Path = CODE_DIR) -> str:
    """``COMMIT``, ``COMMIT-dirty`` or ``unknown``: one string for params, tags and lineage."""
    state = git_state(directory)
    if state is None:
        return "unknown"
    commit, dirty = state
    return commit + ("-dirty" if dirty else "")


class _Reader(Protocol):
    @property
    def items(self) -> Iterable[Any]: ...


def _item_files(item: Any) -> list[Path]:
    paths = [Path(item.image), *(Path(p) for p in getattr(item, "masks", {}).values())]
    for extra in ("landmarks", "rsml", "labels"):
        p = getattr(item, extra, None)
        if p is not None:
            paths.append(Path(p))
    return paths


def dataset_hash(reader: _Reader) -> str:
    """sha256 over every file of every item (name and content): which exact data a model saw."""
    h = hashlib.sha256()
    for item in reader.items:
        for p in _item_files(item):
            if p.is_file():
                h.update(p.name.encode())
                h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()
