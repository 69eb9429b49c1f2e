"""MLflow tracking: where runs go, and a clear stop when that place is unreachable.

Default: a local sqlite store in the project's data folder
($HADES_DATA_DIR/mlflow, HADES_DATA_DIR defaults to ./var). MLFLOW_TRACKING_URI
points elsewhere (a tracking server, an Azure ML workspace) with no code change.
If the configured store cannot be reached, training fails before it starts:
silently falling back would scatter runs over machines.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def data_dir() -> Path:
    return Path(os.environ.get("HADES_DATA_DIR", "var")).resolve()


def tracking_uri() -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    store = data_dir() / "mlflow"
    store.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store / 'mlflow.db'}"


def redact(uri: str) -> str:
    """A URI safe to log or store: no user info, no query (tokens, SAS)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    if not parts.netloc:  # sqlite:///path, file:///path: nothing secret but a query
        return uri.split("?", 1)[0]
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def start_tracking(experiment: str) -> str:
    """Point MLflow at the store and make sure it answers; returns the URI in use."""
    import mlflow

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        exp = mlflow.get_experiment_by_name(experiment)
        if exp is None:
            artifacts = None
            if uri.startswith("sqlite:///"):
                artifacts = (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
            mlflow.create_experiment(experiment, artifact_location=artifacts)
        mlflow.set_experiment(experiment)
    except Exception as exc:
        raise RuntimeError(
            f"MLflow tracking store {redact(uri)} is not reachable ({type(exc).__name__}: {str(exc)[:200]}). "
            "Start it, fix MLFLOW_TRACKING_URI, or unset MLFLOW_TRACKING_URI to use the local store in "
            f"{data_dir() / 'mlflow'}."
        ) from exc
    log.info("MLflow tracking at %s, experiment %r", redact(uri), experiment)
    return uri
