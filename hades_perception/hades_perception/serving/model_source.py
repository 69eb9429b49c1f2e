"""Where a server's model comes from: a store channel (through the local cache), or the
bundle folder in model_bundle_path; and how a bundle becomes a pipeline on its engine
settings. The ROS node and the HTTP API both call this while starting, with their own
settings behind `p(name)` (the node's parameters; the API's settings), so both serve,
follow and swap models the same way.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hades_perception.contract.bundle import load_manifest, open_bundle
from hades_perception.contract.signing import Ed25519PublicKey, load_trusted_keys, verify_bundle
from hades_perception.inference.loading import default_engine_cache, load_pipeline, serve_checked
from hades_perception.inference.pipeline import Pipeline
from hades_perception.inference.tensorrt_engine import local_engine_key
from hades_perception.models.cache import ModelCache
from hades_perception.models.follower import ModelFollower
from hades_perception.models.store import ModelStore
from hades_perception.serving.slot import Attempt, ServingSlot
from hades_perception.serving.worker import InferenceWorker

log = logging.getLogger(__name__)
Param = Callable[[str], Any]  # setting values by name (the node's parameter names)


def bundle_loader(p: Param, following: bool) -> Callable[..., Pipeline]:
    """bundle folder (already verified) -> pipeline, on the engine the parameters ask for
    (`precision`: instead of the parameter's, for a fall back to fp32).
    engine_file_path applies only while no store is followed (one file, one version)."""
    engine_key, why = local_engine_key()  # which prebuilt TensorRT engine this machine could use
    log.info("prebuilt TensorRT engines: %s", engine_key or f"none ({why})")
    engine_file = p("engine_file_path")

    def load(bundle: Path, precision: str | None = None) -> Pipeline:
        return load_pipeline(
            bundle,
            providers=tuple(p("execution_providers")),
            threads=p("intra_op_threads") or None,
            engine_key=engine_key,
            engine_file=Path(engine_file).expanduser() if engine_file and not following else None,
            force_engine_update=p("force_engine_update"),
            verified=True,
            px_per_mm=p("px_per_mm") or None,
            dish_mm=p("dish_mm"),
            precision=precision or p("precision"),
            engine_cache_dir=engine_cache(p),
        )

    return load


def cache(p: Param) -> ModelCache:
    folder = p("cache_dir")
    if not folder:
        data = os.environ.get("HADES_DATA_DIR")
        folder = str(Path(data) / "model-cache") if data else "~/.cache/hades_perception"
    return ModelCache(Path(folder).expanduser())


def engine_cache(p: Param) -> Path:
    """Where TensorRT keeps the engines it builds and OpenVINO its compiled models:
    engine_cache_dir; empty: $HADES_DATA_DIR/engine-cache or ~/.cache/hades_perception-engines."""
    folder = p("engine_cache_dir")
    return Path(folder).expanduser() if folder else default_engine_cache()


def follower(
    p: Param,
    slot: ServingSlot,
    store: ModelStore | None,
    model: str,
    channel: str,
    cache: ModelCache,
    trusted: dict[str, Ed25519PublicKey] | None,
) -> ModelFollower:
    return ModelFollower(
        store,
        cache,
        model,
        channel,
        slot,
        trusted=trusted,
        poll_period=p("poll_period"),
        latency_budget_ms=p("latency_budget_ms") or None,
    )


def start_serving(p: Param, worker: InferenceWorker[Any] | None) -> tuple[ServingSlot, ModelFollower | None]:
    """A slot serving the channel's version when a store is set (from the cache without
    a network), else, or when that fails, the bundle folder in model_bundle_path; and
    the follower of that channel (not started). Raises when nothing can be served.
    `worker`: whose gaps between frames a new version's golden passes use (the node's);
    None runs them on the follower's thread (the HTTP API, which has no frame queue)."""
    trusted = load_trusted_keys(Path(p("trusted_keys_dir"))) if p("trusted_keys_dir") else None
    if trusted is None:
        log.warning(
            "no trusted_keys_dir: bundles are served WITHOUT checking their signatures (a development set-up, "
            "as the embedded demo); production sets trusted_keys_dir, and unsigned bundles are then refused"
        )
    fallback = Path(p("model_bundle_path")).expanduser()
    load = bundle_loader(p, following=bool(p("store_url")))
    slot = ServingSlot(load, worker)
    follows = None
    if p("store_url"):
        model = p("model_name") or load_manifest(fallback).name
        follows = follower(p, slot, ModelStore.open(p("store_url")), model, p("channel"), cache(p), trusted)
        attempt = follows.initial()
        if attempt is not None and attempt.ok:
            return slot, follows
        log.warning(
            "channel %s of %s not servable now (%s); serving %s until it is",
            p("channel"),
            model,
            follows.status.last_error or "never set",
            fallback,
        )
    if trusted:
        verify_bundle(fallback, trusted)
    manifest = open_bundle(fallback, verify=True)  # sha256 of every file before it is served
    pipeline = serve_checked(
        fallback, lambda asked: load(fallback, asked), p("precision"), latency_budget_ms=p("latency_budget_ms") or None
    )
    slot.install(pipeline, Attempt(manifest.version, "bundle", ok=True))
    return slot, follows


def start_shadow(p: Param, serving: ModelFollower, worker: InferenceWorker[Any]) -> tuple[ServingSlot, ModelFollower]:
    """The shadow channel's slot (golden passes in the serving worker's gaps) and follower."""
    slot = ServingSlot(bundle_loader(p, following=True), worker)
    channel = p("shadow_channel")
    return slot, follower(p, slot, serving.store, serving.model, channel, serving.cache, serving.trusted)
