"""The docs website builds as `make docs` builds it (mkdocs, strict: a broken link, a
missing page or an unreadable docstring fails), with every page the issue names, an
OpenAPI reference holding every route the server answers, and a code reference."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PAGES = (
    *("install", "quickstart", "node", "training", "model-store", "monitoring", "batch", "api", "webapp", "azure"),
    *("containers", "release", "runbooks", "troubleshooting", "reference/openapi", "reference/code"),
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    r = subprocess.run(
        # The installed script, as `make docs` runs it (`python -m mkdocs` from the repository
        # root would import the folder hades_perception/ instead of the package).
        [str(Path(sys.executable).parent / "mkdocs"), "build", "--strict", "--site-dir", str(out)],
        cwd=REPO,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-4000:]
    return out


def test_every_page_is_built(site: Path):
    missing = [p for p in PAGES if not (site / p / "index.html").is_file()]
    assert missing == [] and (site / "index.html").is_file()


def test_the_openapi_reference_holds_every_route_the_server_answers(site: Path):
    """The schema is the app's own (docs/_hooks/openapi.py builds it from create_app at
    each build); the page lists every route in it."""
    schema = json.loads((site / "reference" / "openapi.json").read_text())
    page = (site / "reference" / "openapi" / "index.html").read_text()
    routes = [f"{m.upper()} {path}" for path, ops in schema["paths"].items() for m in ops]
    assert {"POST /v1/predict", "GET /v1/live", "POST /v1/models/{name}/promote", "GET /v2/health/ready"} <= set(routes)
    assert [r for r in routes if r not in page] == []


def test_the_code_reference_is_made_from_the_docstrings(site: Path):
    page = (site / "reference" / "code" / "index.html").read_text()
    for qualified in (
        "hades_perception.inference.pipeline.Pipeline",
        "hades_perception.models.store.ModelStore",
        "hades_perception.monitoring.drift.DriftMonitor",
        "hades_perception.api.live.LiveFeed",
    ):
        assert f'id="{qualified}"' in page, qualified
