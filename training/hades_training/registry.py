"""The MLflow model registry as a mirror of the model store.

The store is the source of truth: nodes follow its channels, and its versions are
immutable and signed. The registry mirrors it for people who live in MLflow: one
registered model per store model, one registry version per store version (tagged with
the store version and linked to the training run whose artifacts hold the bundle), and
one alias per channel (`production`, `canary`, ...) on the version the channel points at.
Mirroring is idempotent: run it after any publish, promote or rollback.
"""

from __future__ import annotations

import logging
from typing import Any

from hades_perception.models.store import ModelStore

log = logging.getLogger(__name__)
STORE_VERSION_TAG = "hades.store_version"


def mirror(store: ModelStore, model: str) -> dict[str, Any]:
    """Bring the registry in line with the store for `model`; what it now holds."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from hades_training.config import EXPERIMENT
    from hades_training.tracking import start_tracking

    start_tracking(EXPERIMENT)
    client = MlflowClient()
    try:
        client.get_registered_model(model)
    except MlflowException:
        client.create_registered_model(model, description=f"mirror of {store.describe()} (the store decides)")
    known = {
        mv.tags.get(STORE_VERSION_TAG): mv.version
        for mv in client.search_model_versions(f"name='{model}'")
        if mv.tags.get(STORE_VERSION_TAG)
    }
    for version in store.versions(model):
        if version in known:
            continue
        manifest = store.manifest(model, version)
        run_id = (manifest.get("lineage") or {}).get("mlflow_run_id")
        source = f"{store.describe()}/{store.version_key(model, version)}"
        if run_id:
            try:
                source = f"{client.get_run(run_id).info.artifact_uri}/bundle/{version}"
            except MlflowException:
                run_id = None  # a run of another tracking server: link the store only
        onnx_sha = ((manifest.get("files") or {}).get("model.onnx") or {}).get("sha256", "")
        tags = {STORE_VERSION_TAG: version, "hades.onnx_sha256": onnx_sha}
        mv = client.create_model_version(model, source, run_id=run_id, tags=tags)
        known[version] = mv.version
    aliases = {}
    for channel, pointer in store.channels(model).items():
        if pointer.version in known:
            client.set_registered_model_alias(model, channel, known[pointer.version])
            aliases[channel] = pointer.version
    log.info("registry %s mirrors %d store versions; aliases %s", model, len(known), aliases)
    return {"versions": {v: str(r) for v, r in known.items()}, "aliases": aliases}
