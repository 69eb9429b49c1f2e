"""Two people promoting to one channel at the same time, from separate processes:
ETag-conditional writes with retry mean no move is lost and the chain of
`previous` versions is the order the moves landed in."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path
from typing import Any, cast

import pytest

from hades_perception.models.blobs import Blobs, ConflictError, open_blobs
from hades_perception.models.store import ModelStore
from tests.azurite import Azurite
from tests.store.conftest import MODEL, BundleFactory

PER_PROMOTER = 5
PROMOTERS = ("alice", "bob")


class CountingConflicts:
    """The store's blobs, counting the conditional writes that lost to the other promoter."""

    def __init__(self, inner: Blobs) -> None:
        self.inner, self.lost = inner, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def write(self, key: str, data: bytes, *, if_match: str | None = None, if_absent: bool = False) -> str:
        try:
            return self.inner.write(key, data, if_match=if_match, if_absent=if_absent)
        except ConflictError:
            self.lost += 1
            raise


def promoter(connection_string: str, url: str, who: str, versions: list[str], start: Any, out: str) -> None:
    """One person's shell: promote each version in turn; record what each promote() returned."""
    os.environ["AZURE_STORAGE_CONNECTION_STRING"] = connection_string
    blobs = CountingConflicts(open_blobs(url))
    store = ModelStore(cast(Blobs, blobs))
    start.wait(60)
    moves = []
    for v in versions:
        p = store.promote(MODEL, v, "canary", f"{who} ships {v}", by=who)
        moves.append({"version": p.version, "previous": p.previous, "by": p.by})
    Path(out).write_text(json.dumps({"moves": moves, "conflicts": blobs.lost}))


@pytest.mark.slow
def test_two_processes_promoting_at_once_lose_no_move(
    azurite: Azurite, store: ModelStore, make_bundle: BundleFactory, tmp_path: Path
):
    """The promoters collide, yet every move is in the history exactly once and its previous is the move before it."""
    versions = {who: [f"2026.12.{i:02d}-{who}" for i in range(1, PER_PROMOTER + 1)] for who in PROMOTERS}
    for vs in versions.values():
        for v in vs:
            store.publish(make_bundle(v))
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(len(PROMOTERS))
    procs = {
        who: ctx.Process(
            target=promoter,
            args=(
                azurite.connection_string,
                store.describe(),
                who,
                vs,
                start,
                str(tmp_path / f"{who}.json"),
            ),
        )
        for who, vs in versions.items()
    }
    for p in procs.values():
        p.start()
    for p in procs.values():
        p.join(120)
    assert all(p.exitcode == 0 for p in procs.values()), {w: p.exitcode for w, p in procs.items()}
    results = {who: json.loads((tmp_path / f"{who}.json").read_text()) for who in PROMOTERS}

    got = store.pointer(MODEL, "canary")
    assert got is not None
    landed = list(reversed(got[0].moves()))  # oldest first
    assert sorted((m.by, m.version) for m in landed) == sorted((w, v) for w, vs in versions.items() for v in vs)
    for who in PROMOTERS:  # each person's moves landed in the order they were made
        assert [m.version for m in landed if m.by == who] == versions[who]
    # what each promote() returned as `previous` is the move that landed just before it
    previous = {(m["by"], m["version"]): m["previous"] for r in results.values() for m in r["moves"]}
    for before, move in zip([None, *landed], landed, strict=False):
        assert previous[(move.by, move.version)] == (before.version if before else None)
    conflicts = {w: r["conflicts"] for w, r in results.items()}
    assert sum(conflicts.values()) > 0, "the promoters never collided: the test proved nothing about concurrency"
