"""`hades-model`: the model store from the command line, for people and pipelines.

  keygen PREFIX                               an ed25519 key pair: PREFIX.key (keep secret), PREFIX.pub
  publish BUNDLE [--sign PREFIX.key]          upload an exported bundle as an immutable version
  list [MODEL]                                models; or a model's versions and channels
  show MODEL VERSION|CHANNEL                  one version's manifest summary, or a channel's history
  promote MODEL VERSION --channel C --reason R    move a channel (only ever done by a person;
                                              production shows the evidence and asks, or --yes)
  attach MODEL VERSION NAME FILE              keep a record about a version (a drift report,
                                              shadow agreement) for whoever promotes it
  rollback MODEL --channel C --reason R       move a channel back to the version before
  pull MODEL VERSION --cache DIR              fetch and verify into a node's cache (robots without network)

The store is --store, else $HADES_MODEL_STORE, else $HADES_DATA_DIR/model-store, else
./var/model-store: a folder, file://, azure://<container>[/<prefix>] or an https blob
URL. Azure credentials come from the environment (see docs/model-store.md) and are
never printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from hades_perception.contract.bundle import BundleError
from hades_perception.contract.signing import generate_keypair, key_id, load_private_key, load_trusted_keys
from hades_perception.models.blobs import StoreError
from hades_perception.models.cache import ModelCache
from hades_perception.models.store import PRODUCTION, ModelStore, Pointer, version_summary

log = logging.getLogger("hades-model")


def default_store() -> str:
    if os.environ.get("HADES_MODEL_STORE"):
        return os.environ["HADES_MODEL_STORE"]
    return str(Path(os.environ.get("HADES_DATA_DIR", "var")) / "model-store")


def _store(args: argparse.Namespace) -> ModelStore:
    return ModelStore.open(args.store or default_store())


def _print(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=1) if args.json else text)


def _pointer_text(p: Pointer) -> str:
    return f"{p.channel:<12} -> {p.version:<20} by {p.by} at {p.at} ({p.action}: {p.reason})"


def _keygen(args: argparse.Namespace) -> int:
    private, public = generate_keypair(Path(args.prefix))
    from hades_perception.contract.signing import load_public_key

    print(f"private key: {private} (keep it with the publishing pipeline; never on a robot)")
    print(f"public key:  {public} (copy into each node's trusted_keys_dir); key id {key_id(load_public_key(public))}")
    return 0


def _publish(args: argparse.Namespace) -> int:
    store = _store(args)
    key = load_private_key(Path(args.sign)) if args.sign else None
    manifest, new = store.publish(Path(args.bundle), key)
    what = f"{manifest['name']} {manifest['version']}"
    if not new:
        print(f"{what} is already in {store.describe()} (identical manifest); nothing uploaded")
        return 0
    signed = f", signed by key {key_id(key.public_key())}" if key else ", unsigned"
    print(f"published {what} to {store.describe()}{signed}")
    return 0


def _list(args: argparse.Namespace) -> int:
    store = _store(args)
    if not args.model:
        models = store.models()
        _print(args, models, "\n".join(models) or f"no models in {store.describe()}")
        return 0
    versions = store.versions(args.model)
    channels = store.channels(args.model)
    rows = []
    for v in versions:
        m = store.manifest(args.model, v)
        on = [c for c, p in channels.items() if p.version == v]
        rows.append({"version": v, "created_at": m.get("created_at", ""), "channels": on})
    lines = [f"{r['version']:<20} {r['created_at']:<26} {' '.join(r['channels'])}" for r in rows]
    lines += ["", "channels:"] + [_pointer_text(p) for p in channels.values()] if channels else []
    _print(
        args,
        {"versions": rows, "channels": {c: vars(p) | {"history": len(p.history)} for c, p in channels.items()}},
        "\n".join(lines) or f"{args.model}: no versions in {store.describe()}",
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    store = _store(args)
    if args.what in store.channels(args.model):
        got = store.pointer(args.model, args.what)
        assert got is not None
        p = got[0]
        text = "\n".join(
            [_pointer_text(p), "history (newest first):"]
            + [f"  {m.version:<20} by {m.by} at {m.at} ({m.action}: {m.reason})" for m in p.history]
        )
        _print(args, json.loads(p.to_json()), text)
        return 0
    m = store.manifest(args.model, args.what)
    signed = store.is_signed(args.model, args.what)
    summary = version_summary(m, signed)
    _print(args, m if args.full else summary, json.dumps(summary, indent=1))
    return 0


def evidence_text(records: dict[str, dict[str, Any]]) -> list[str]:
    """What is known about a version before it goes to production, one line per fact."""
    lines = []
    pipeline = records.get("pipeline")
    if pipeline:
        gates = [g for g in pipeline.get("gates", []) if isinstance(g, dict)]
        failed = [g for g in gates if not g.get("passed")]
        lines.append(
            f"retraining pipeline: {pipeline.get('decision')} against {pipeline.get('production')}, "
            f"{len(gates) - len(failed)}/{len(gates)} gates passed"
        )
        # A record may come from `hades-model attach` too: nothing in it is taken for granted.
        lines += [
            f"  {'ok  ' if g.get('passed') else 'FAIL'} {g.get('gate', '?')}: {g.get('value', '?')} "
            f"(bound {g.get('bound', '?')})"
            for g in gates
            if isinstance(g, dict)
        ]
    for name, doc in sorted(records.items()):
        if name == "pipeline":
            continue
        if "drift_detected" in doc:
            drifted = [
                str(s.get("name", "?")) for s in doc.get("signals", []) if isinstance(s, dict) and s.get("drifted")
            ]
            verdict = f"drift in {', '.join(drifted)}" if drifted else "no drift"
            lines.append(f"{name}: {verdict} over {doc.get('frames')} frames")
        else:
            lines.append(f"{name}: {json.dumps(doc)[:300]}")
    return lines or ["no records: no gate results, drift report or shadow agreement is attached to this version"]


def _promote(args: argparse.Namespace) -> int:
    store = _store(args)
    if args.channel == PRODUCTION:
        store.manifest(args.model, args.version)  # a clear error before any question
        print(f"promoting {args.model} {args.version} to {PRODUCTION}; what is known about it:")
        for line in evidence_text(store.records(args.model, args.version)):
            print(f"  {line}")
        if not args.yes:
            if not sys.stdin.isatty():
                raise ValueError(f"{PRODUCTION} needs a person's confirmation: run it in a terminal, or pass --yes")
            answer = input(f"type the version ({args.version}) to promote it to {PRODUCTION}: ").strip()
            if answer != args.version:
                print("not confirmed; nothing changed")
                return 1
    p = store.promote(args.model, args.version, args.channel, args.reason, args.by)
    print(f"{args.model} {p.channel}: {p.previous} -> {p.version} (by {p.by}: {p.reason})")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    p = _store(args).rollback(args.model, args.channel, args.reason, args.by)
    print(f"{args.model} {p.channel} rolled back: {p.previous} -> {p.version} (by {p.by}: {p.reason})")
    return 0


def _attach(args: argparse.Namespace) -> int:
    doc = json.loads(Path(args.file).read_text())
    if not isinstance(doc, dict):
        raise ValueError(f"{args.file}: expected a JSON object")
    _store(args).write_record(args.model, args.version, args.name, doc)
    print(f"{args.name} attached to {args.model} {args.version}")
    return 0


def _pull(args: argparse.Namespace) -> int:
    trusted = load_trusted_keys(Path(args.trusted_keys)) if args.trusted_keys else None
    got = ModelCache(Path(args.cache)).fetch(_store(args), args.model, args.version, trusted)
    print(f"{args.model} {args.version} verified in {got.path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="hades-model", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--store", help="store URL (default: $HADES_MODEL_STORE or var/model-store)")
    ap.add_argument("--json", action="store_true", help="machine-readable output")
    ap.add_argument("-v", "--verbose", action="store_true", help="log what the store client does")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("keygen", help="generate an ed25519 signing key pair")
    s.add_argument("prefix", help="writes PREFIX.key and PREFIX.pub")
    s.set_defaults(func=_keygen)
    s = sub.add_parser("publish", help="upload a bundle as a new immutable version")
    s.add_argument("bundle")
    s.add_argument("--sign", metavar="KEY", help="ed25519 private key (PREFIX.key) to sign the manifest with")
    s.set_defaults(func=_publish)
    s = sub.add_parser("list", help="models, or one model's versions and channels")
    s.add_argument("model", nargs="?")
    s.set_defaults(func=_list)
    s = sub.add_parser("show", help="a version's manifest summary or a channel's history")
    s.add_argument("model")
    s.add_argument("what", help="a version or a channel name")
    s.add_argument("--full", action="store_true", help="with --json: the whole manifest")
    s.set_defaults(func=_show)
    for name, func in (("promote", _promote), ("rollback", _rollback)):
        s = sub.add_parser(name, help=f"{name} a channel (a person's decision; a reason is required)")
        s.add_argument("model")
        if name == "promote":
            s.add_argument("version")
        s.add_argument("--channel", required=True, help="e.g. canary or production; never implied")
        s.add_argument("--reason", required=True, help="why; recorded in the channel's history")
        s.add_argument("--by", help="who (default: user@host)")
        if name == "promote":
            s.add_argument("--yes", action="store_true", help=f"{PRODUCTION}: confirmed already (with --reason)")
        s.set_defaults(func=func)
    s = sub.add_parser("attach", help="keep a JSON record about a version (drift report, shadow agreement)")
    s.add_argument("model")
    s.add_argument("version")
    s.add_argument("name", help="record name, e.g. drift or shadow")
    s.add_argument("file", help="a JSON object, e.g. hades-train monitor's drift.json")
    s.set_defaults(func=_attach)
    s = sub.add_parser("pull", help="fetch and verify a version into a node's cache")
    s.add_argument("model")
    s.add_argument("version")
    s.add_argument("--cache", required=True, help="the node's cache_dir")
    s.add_argument("--trusted-keys", help="folder of trusted *.pub keys: refuse unsigned bundles")
    s.set_defaults(func=_pull)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.INFO if args.verbose else logging.WARNING  # the printed lines say what happened
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("azure").setLevel(logging.WARNING)  # request logs would show URLs with SAS tokens
    try:
        return int(args.func(args))
    except (StoreError, BundleError, ValueError, OSError) as exc:
        print(f"hades-model {args.cmd}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
