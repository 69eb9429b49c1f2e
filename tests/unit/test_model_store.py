"""The versioned model store over a local folder: immutable versions, channel pointers
moved by people with who/when/why, rollback, concurrent promotions, and `hades-model`.

Also the bundle helpers the cache and follower tests share: other versions of the
shipped bundle, and a version that loads but computes something else."""

from __future__ import annotations

import io
import json
import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from hades_perception.contract.bundle import MANIFEST, load_manifest, open_bundle
from hades_perception.models import cli as model_cli
from hades_perception.models.blobs import ConflictError, NotFoundError, StoreError
from hades_perception.models.store import ModelStore
from tests.bundles import SHIPPED, new_version

MODEL = "hades-seedlings"
V1 = load_manifest(SHIPPED).version  # the shipped bundle's own version
V2, V3, V4 = "2030.01.01-1", "2030.01.02-1", "2030.01.03-1"  # newer than any shipped version


# --- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Four versions of the shipped model, by version."""
    d = tmp_path_factory.mktemp("bundles")
    return {V1: SHIPPED, **{v: new_version(d / v, v) for v in (V2, V3, V4)}}


@pytest.fixture(scope="module")
def store(bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    """A folder store with the four versions published. Versions are immutable, so
    tests share it; each test that moves pointers uses a channel of its own."""
    s = ModelStore.open(tmp_path_factory.mktemp("store"))
    for b in bundles.values():
        s.publish(b)
    return s


# --- versions ---------------------------------------------------------------------------------
def test_a_published_version_holds_exactly_the_exported_files(store: ModelStore) -> None:
    """Publishing uploads every file and the manifest, byte for byte."""
    assert store.models() == [MODEL]
    assert store.versions(MODEL) == [V1, V2, V3, V4]
    assert store.manifest(MODEL, V1) == json.loads((SHIPPED / MANIFEST).read_text())
    root = Path(store.describe().removeprefix("file://"))
    for rel in [*json.loads((SHIPPED / MANIFEST).read_text())["files"], MANIFEST]:
        assert (root / MODEL / "versions" / V1 / rel).read_bytes() == (SHIPPED / rel).read_bytes()
    assert not store.is_signed(MODEL, V1)


def test_a_version_is_immutable_a_different_manifest_is_refused(store: ModelStore, tmp_path: Path) -> None:
    """Publishing an existing version with a different manifest is a ConflictError and changes nothing."""
    before = store.manifest(MODEL, V2)
    changed = new_version(tmp_path / "changed", V2, created_at="2027-01-01T00:00:00Z")
    with pytest.raises(ConflictError, match="immutable"):
        store.publish(changed)
    assert store.manifest(MODEL, V2) == before


def test_republishing_an_identical_version_is_harmless(store: ModelStore, bundles: dict[str, Path]) -> None:
    """A retried publish of the same bundle reports (manifest, False) and rewrites nothing."""
    root = Path(store.describe().removeprefix("file://"))
    onnx_file = root / MODEL / "versions" / V3 / "model.onnx"
    mtime = onnx_file.stat().st_mtime_ns
    manifest, new = store.publish(bundles[V3])
    assert (new, manifest["version"]) == (False, V3)
    assert onnx_file.stat().st_mtime_ns == mtime


def test_a_version_whose_manifest_was_never_written_is_not_listed(tmp_path: Path) -> None:
    """Files without a manifest (a publisher cut off mid-way) are not a version: not listed, not promotable."""
    store = ModelStore.open(tmp_path / "store")
    store.blobs.ensure_container()
    for rel in ("golden/expected.json", "model.onnx"):  # what publish uploads before the manifest
        store.blobs.upload(store.version_key(MODEL, V2, rel), SHIPPED / rel)
    assert store.versions(MODEL) == []
    assert store.models() == []
    with pytest.raises(NotFoundError, match="not published"):
        store.manifest(MODEL, V2)
    with pytest.raises(NotFoundError):
        store.promote(MODEL, V2, "production", "cut-off upload", by="test")


def test_numbered_builds_of_a_day_are_listed_in_numeric_order(tmp_path: Path) -> None:
    """Versions list oldest first: build -10 of a day comes after build -3, not before it."""
    store = ModelStore.open(tmp_path / "store")
    for v in ("2026.11.22-10", "2026.11.22-9", "2026.11.22-3"):
        store.publish(new_version(tmp_path / v, v))
    assert store.versions(MODEL) == ["2026.11.22-3", "2026.11.22-9", "2026.11.22-10"]


def test_a_bundle_that_does_not_match_its_manifest_is_not_published(tmp_path: Path) -> None:
    """Publish verifies the bundle first: a corrupted export never becomes a version."""
    bundle = new_version(tmp_path / "b", V2)
    with (bundle / "golden" / "expected.json").open("ab") as f:
        f.write(b" ")
    store = ModelStore.open(tmp_path / "store")
    store.blobs.ensure_container()
    with pytest.raises(ValueError, match=r"expected\.json"):
        store.publish(bundle)
    assert store.versions(MODEL) == []


# --- channels -----------------------------------------------------------------------------------
def test_promote_refuses_a_version_that_is_not_published(store: ModelStore) -> None:
    """Promoting an unknown version is a NotFoundError and sets no pointer."""
    with pytest.raises(NotFoundError, match="not published"):
        store.promote(MODEL, "2099.01.01-1", "refuse-unknown", "typo", by="test")
    assert store.pointer(MODEL, "refuse-unknown") is None


@pytest.mark.parametrize("reason", ["", "   "])
def test_promote_and_rollback_refuse_an_empty_reason(store: ModelStore, reason: str) -> None:
    """A channel never moves without a reason."""
    channel = f"no-reason-{len(reason)}"
    with pytest.raises(ValueError, match="reason is required"):
        store.promote(MODEL, V1, channel, reason, by="test")
    assert store.pointer(MODEL, channel) is None
    store.promote(MODEL, V1, channel, "first", by="test")
    store.promote(MODEL, V2, channel, "second", by="test")
    with pytest.raises(ValueError, match="reason is required"):
        store.rollback(MODEL, channel, reason, by="test")
    got = store.pointer(MODEL, channel)
    assert got is not None and got[0].version == V2


def test_a_pointer_records_who_when_why_and_the_version_before(store: ModelStore) -> None:
    """Each move is recorded: version, previous, by, at, reason, action, and the history newest first."""
    first = store.promote(MODEL, V1, "record", "initial release", by="ana")
    assert (first.version, first.previous, first.by, first.reason, first.action) == (
        V1,
        None,
        "ana",
        "initial release",
        "promote",
    )
    assert first.history == [] and first.at.endswith("+00:00")
    second = store.promote(MODEL, V2, "record", "  better shoots  ", by="ben")
    got = store.pointer(MODEL, "record")
    assert got is not None
    pointer, etag = got
    assert pointer == second
    assert (pointer.version, pointer.previous, pointer.by, pointer.reason) == (V2, V1, "ben", "better shoots")
    assert [(m.version, m.by, m.reason) for m in pointer.history] == [(V1, "ana", "initial release")]
    assert store.channels(MODEL)["record"] == pointer
    assert etag.startswith('"')


def test_a_pointer_with_fields_from_a_newer_writer_is_still_read(store: ModelStore) -> None:
    """Fields this version does not know (added by a newer hades-model) are ignored, not fatal."""
    p = store.promote(MODEL, V1, "newer", "first", by="ana")
    p = store.promote(MODEL, V2, "newer", "second", by="ana")
    data = json.loads(p.to_json())
    data["approved_by"] = "ben"
    data["history"][0]["ticket"] = "HADES-12"
    store.blobs.write(store.channel_key(MODEL, "newer"), json.dumps(data).encode())
    got = store.pointer(MODEL, "newer")
    assert got is not None and got[0] == p
    assert store.rollback(MODEL, "newer", "back", by="ana").version == V1


def test_a_garbled_pointer_is_a_store_error_naming_the_channel(store: ModelStore) -> None:
    """A pointer file that is not a pointer is a StoreError (a node keeps serving and says why), not a crash."""
    store.blobs.write(store.channel_key(MODEL, "garbled"), b'{"model": "hades-seedlings", "vers')
    with pytest.raises(StoreError, match=r"channels/garbled\.json: unreadable channel pointer"):
        store.pointer(MODEL, "garbled")
    with pytest.raises(StoreError, match="unreadable channel pointer"):
        store.promote(MODEL, V1, "garbled", "over garbage", by="ana")


def test_promoting_the_version_a_channel_already_serves_is_refused(store: ModelStore) -> None:
    """A move that changes nothing is refused, so the history only holds real moves."""
    store.promote(MODEL, V1, "same", "first", by="test")
    with pytest.raises(ValueError, match="already points at"):
        store.promote(MODEL, V1, "same", "again", by="test")
    got = store.pointer(MODEL, "same")
    assert got is not None and got[0].history == []


def test_a_poll_sees_nothing_until_the_channel_moves(store: ModelStore) -> None:
    """pointer_if_changed is None while the ETag holds, and the new pointer once it moved."""
    store.promote(MODEL, V1, "poll", "first", by="test")
    got = store.pointer(MODEL, "poll")
    assert got is not None
    etag = got[1]
    assert store.pointer_if_changed(MODEL, "poll", etag) is None
    store.promote(MODEL, V2, "poll", "second", by="test")
    moved = store.pointer_if_changed(MODEL, "poll", etag)
    assert moved is not None and moved[0].version == V2 and moved[1] != etag
    assert store.pointer_if_changed(MODEL, "poll", moved[1]) is None


def test_rollback_returns_to_the_previous_version(store: ModelStore) -> None:
    """Rollback points the channel at the version it served before, recorded as a rollback."""
    store.promote(MODEL, V1, "rb1", "first", by="test")
    store.promote(MODEL, V2, "rb1", "second", by="test")
    p = store.rollback(MODEL, "rb1", "shoot masks wrong on new lights", by="cara")
    assert (p.version, p.previous, p.action, p.by) == (V1, V2, "rollback", "cara")
    assert [m.version for m in p.moves()] == [V1, V2, V1]


def test_rolling_back_twice_goes_two_steps_back(store: ModelStore) -> None:
    """A second rollback skips the version the first one left, to the one before it."""
    for v in (V1, V2, V3):
        store.promote(MODEL, v, "rb2", f"release {v}", by="test")
    assert store.rollback(MODEL, "rb2", "bad", by="test").version == V2
    assert store.rollback(MODEL, "rb2", "also bad", by="test").version == V1


def test_rollback_refuses_when_there_is_nothing_earlier(store: ModelStore) -> None:
    """No pointer, a single promotion, or every earlier version rolled back: NotFoundError."""
    with pytest.raises(NotFoundError, match="never set"):
        store.rollback(MODEL, "rb3", "nothing", by="test")
    store.promote(MODEL, V1, "rb3", "first", by="test")
    with pytest.raises(NotFoundError, match="no earlier version"):
        store.rollback(MODEL, "rb3", "nothing before", by="test")
    store.promote(MODEL, V2, "rb3", "second", by="test")
    store.rollback(MODEL, "rb3", "back", by="test")
    with pytest.raises(NotFoundError, match="no earlier version"):
        store.rollback(MODEL, "rb3", "again", by="test")
    got = store.pointer(MODEL, "rb3")
    assert got is not None and got[0].version == V1


def test_rollback_after_a_re_promotion_returns_to_the_version_served_just_before(store: ModelStore) -> None:
    """A version rolled back once, then fixed and promoted again, is what a later rollback returns to."""
    store.promote(MODEL, V1, "rb4", "first", by="test")
    store.promote(MODEL, V2, "rb4", "second", by="test")
    store.rollback(MODEL, "rb4", "lights changed", by="test")
    store.promote(MODEL, V2, "rb4", "lights fixed; V2 again", by="test")
    store.promote(MODEL, V3, "rb4", "third", by="test")
    assert store.rollback(MODEL, "rb4", "third is bad", by="test").version == V2
    assert store.rollback(MODEL, "rb4", "second is bad too", by="test").version == V1


def _promote_many(root: str, who: str, versions: list[str], moves: int, start: Any) -> None:
    """One person's promotions in a process of its own (module level, for spawn)."""
    store = ModelStore.open(root)
    start.wait()  # both processes begin together
    for i in range(moves):
        store.promote(MODEL, versions[i % 2], "race", f"{who}-{i}", by=who)


def test_concurrent_promotions_from_two_processes_lose_no_update(store: ModelStore) -> None:
    """Two processes promoting at once against one folder: every move lands once, in each one's order."""
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(2)
    root, moves = store.describe().removeprefix("file://"), 12
    procs = [
        ctx.Process(target=_promote_many, args=(root, "ana", [V1, V2], moves, start)),
        ctx.Process(target=_promote_many, args=(root, "ben", [V3, V4], moves, start)),
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    got = store.pointer(MODEL, "race")
    assert got is not None
    history = list(reversed(got[0].moves()))  # oldest first
    reasons = [m.reason for m in history]
    assert sorted(reasons) == sorted(f"{who}-{i}" for who in ("ana", "ben") for i in range(moves))
    for who in ("ana", "ben"):
        assert [r for r in reasons if r.startswith(who)] == [f"{who}-{i}" for i in range(moves)]
    assert all(m.version in ((V1, V2) if m.by == "ana" else (V3, V4)) for m in history)
    by = [m.by for m in history]
    assert by != sorted(by) and by != sorted(by, reverse=True), "the two processes never overlapped"


# --- the command line -----------------------------------------------------------------------
def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = model_cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_cli_publishes_lists_shows_promotes_and_rolls_back(
    bundles: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """hades-model: publish, list, show a version and a channel, promote, roll back; --json parses."""
    s = ["--store", str(tmp_path / "store")]
    code, out, _ = _cli(capsys, *s, "publish", str(bundles[V1]))
    assert code == 0 and f"published {MODEL} {V1}" in out and "unsigned" in out
    assert _cli(capsys, *s, "publish", str(bundles[V2]))[0] == 0
    code, out, _ = _cli(capsys, *s, "publish", str(bundles[V2]))
    assert code == 0 and "nothing uploaded" in out
    code, out, _ = _cli(capsys, *s, "list")
    assert (code, out.split()) == (0, [MODEL])
    # Production is a person's confirmed decision: without a terminal to ask in, --yes.
    code, _, err = _cli(capsys, *s, "promote", MODEL, V1, "--channel", "production", "--reason", "first")
    assert code == 1 and "confirmation" in err and "--yes" in err
    prod = ("--channel", "production", "--yes")
    code, out, _ = _cli(capsys, *s, "promote", MODEL, V1, *prod, "--reason", "first", "--by", "ana")
    assert code == 0 and f"None -> {V1}" in out
    code, out, _ = _cli(capsys, *s, "promote", MODEL, V2, *prod, "--reason", "newer", "--by", "ben")
    assert code == 0 and f"{V1} -> {V2}" in out and "ben" in out
    code, out, _ = _cli(capsys, *s, "--json", "list", MODEL)
    listing = json.loads(out)
    assert [r["version"] for r in listing["versions"]] == [V1, V2]
    assert [r["channels"] for r in listing["versions"]] == [[], ["production"]]
    assert listing["channels"]["production"]["version"] == V2
    code, out, _ = _cli(capsys, *s, "--json", "show", MODEL, V2)
    shown = json.loads(out)
    assert code == 0 and shown["version"] == V2 and shown["signed"] is False
    assert shown["classes"] == ["root", "shoot", "seed", "occluded_root"]
    code, out, _ = _cli(capsys, *s, "rollback", MODEL, "--channel", "production", "--reason", "bad", "--by", "cara")
    assert code == 0 and f"rolled back: {V2} -> {V1}" in out
    code, out, _ = _cli(capsys, *s, "show", MODEL, "production")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["production", "->", V1]
    assert "rollback: bad" in out and f"{V2}" in out and "newer" in out
    code, out, _ = _cli(capsys, *s, "--json", "show", MODEL, "production")
    assert [m["version"] for m in json.loads(out)["history"]] == [V2, V1]
    code, out, _ = _cli(capsys, *s, "pull", MODEL, V1, "--cache", str(tmp_path / "cache"))
    assert code == 0 and "verified" in out
    open_bundle(tmp_path / "cache" / MODEL / "versions" / V1)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["promote", MODEL, "2099.01.01-1", "--channel", "c", "--reason", "r"], "is not published"),
        (["promote", MODEL, V1, "--channel", "c", "--reason", " "], "reason is required"),
        (["rollback", MODEL, "--channel", "c", "--reason", "r"], "never set"),
        (["show", MODEL, "2099.01.01-1"], "is not published"),
        (["publish", "{tmp}/not-a-bundle"], "no manifest.json"),
        (["publish", "{shipped}", "--sign", "{tmp}/missing.key"], "missing.key"),
        (["publish", "{shipped}", "--sign", "{tmp}"], "Is a directory"),
        (["publish", "{shipped}", "--sign", "{shipped}/manifest.json"], "manifest.json: not a PEM private key"),
        (["keygen", "{tmp}/existing"], "never overwritten"),
        (["keygen", "{tmp}/existing.key/ci"], "File exists"),
        (["pull", MODEL, V1, "--cache", "{tmp}/cache", "--trusted-keys", "{tmp}/not-a-bundle"], "no trusted"),
    ],
)
def test_cli_errors_exit_1_with_a_clear_message(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every refusal is one line on stderr naming the command and the cause, and exit code 1."""
    (tmp_path / "not-a-bundle").mkdir()
    (tmp_path / "existing.key").write_text("x")
    store = ModelStore.open(tmp_path / "store")
    store.publish(SHIPPED)
    args = [a.format(tmp=tmp_path, shipped=SHIPPED) for a in argv]
    code, out, err = _cli(capsys, "--store", str(tmp_path / "store"), *args)
    assert code == 1 and out == ""
    assert err.startswith(f"hades-model {args[0]}: ") and message in err and "Traceback" not in err
    assert store.pointer(MODEL, "c") is None


def test_promoting_to_production_shows_the_gates_drift_and_shadow_records_first(
    bundles: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    s = ["--store", str(tmp_path / "store")]
    assert _cli(capsys, *s, "publish", str(bundles[V1]))[0] == 0
    store = ModelStore.open(tmp_path / "store")
    gates = [{"gate": "gate set: IoU root", "value": 0.89, "bound": 0.87, "passed": True}]
    store.write_record(MODEL, V1, "pipeline", {"decision": "promoted-canary", "production": "earlier", "gates": gates})
    drift = tmp_path / "drift.json"
    drift.write_text(json.dumps({"drift_detected": False, "frames": 120, "signals": []}))
    assert _cli(capsys, *s, "attach", MODEL, V1, "drift", str(drift))[0] == 0
    shadow = tmp_path / "shadow.json"
    shadow.write_text(json.dumps({"frames": 500, "mean_iou_root": 0.97}))
    assert _cli(capsys, *s, "attach", MODEL, V1, "shadow", str(shadow))[0] == 0

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Terminal("not-the-version\n"))  # a person who types something else
    code, out, _ = _cli(capsys, *s, "promote", MODEL, V1, "--channel", "production", "--reason", "canary week ok")
    assert (
        code == 1
        and "not confirmed" in out
        and ModelStore.open(tmp_path / "store").pointer(MODEL, "production") is None
    )
    assert "1/1 gates passed" in out and "gate set: IoU root" in out
    assert "drift: no drift over 120 frames" in out and "mean_iou_root" in out
    monkeypatch.setattr("sys.stdin", Terminal(f"{V1}\n"))
    code, out, _ = _cli(capsys, *s, "promote", MODEL, V1, "--channel", "production", "--reason", "canary week ok")
    assert code == 0 and f"None -> {V1}" in out
