"""Provenance in one module: the code's git commit and the data's hash, for training,
export and the Azure job alike."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

from hades_training import provenance


def _git(repo: Path, *args: str) -> str:
    cmd = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org", *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def test_git_commit_is_the_head_marked_dirty_or_unknown_outside_a_checkout(tmp_path: Path):
    plain = tmp_path / "plain"
    plain.mkdir()
    assert provenance.git_commit(plain) == "unknown" and provenance.git_state(plain) is None

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.txt").write_text("one")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "one")
    head = _git(repo, "rev-parse", "HEAD")
    (repo / "untracked.txt").write_text("not part of the code")
    assert provenance.git_state(repo) == (head, False)
    assert provenance.git_commit(repo) == head
    (repo / "a.txt").write_text("two")
    assert provenance.git_state(repo) == (head, True)
    assert provenance.git_commit(repo) == f"{head}-dirty"


def test_dataset_hash_covers_every_file_of_every_item(tmp_path: Path):
    files = {name: tmp_path / name for name in ("p1.png", "p1_root.png", "p1.json", "p2.png")}
    for name, path in files.items():
        path.write_bytes(name.encode())
    reader = SimpleNamespace(
        items=[
            SimpleNamespace(image=files["p1.png"], masks={"root": files["p1_root.png"]}, landmarks=files["p1.json"]),
            SimpleNamespace(image=files["p2.png"], masks={}, landmarks=None),
        ]
    )
    before = provenance.dataset_hash(reader)
    assert before == provenance.dataset_hash(reader) and len(before) == 64
    for path in (files["p1_root.png"], files["p1.json"], files["p2.png"]):
        old = path.read_bytes()
        path.write_bytes(old + b"!")
        assert provenance.dataset_hash(reader) != before, f"{path.name} is not covered"
        path.write_bytes(old)
    assert provenance.dataset_hash(reader) == before


def test_training_export_and_the_azure_job_use_the_one_module():
    from hades_training import azure_job, export, train

    assert train.git_commit is provenance.git_commit and train.dataset_hash is provenance.dataset_hash
    assert export.git_commit is provenance.git_commit and export.dataset_hash is provenance.dataset_hash
    assert azure_job.git_state is provenance.git_state
