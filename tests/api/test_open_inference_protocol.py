"""Open Inference Protocol v2 health and metadata, as a KServe-style probe or client
calls them."""

from __future__ import annotations

import json

from tests.api.conftest import MODEL, TINY, Server


def test_live_and_ready_answer_200_without_a_key(store_server: Server):
    assert store_server.request("GET", "/v2/health/live").json() == {"live": True}
    assert store_server.request("GET", "/v2/health/ready").json() == {"ready": True}


def test_the_served_model_is_ready_and_another_name_is_404(store_server: Server):
    r = store_server.request("GET", f"/v2/models/{MODEL}/ready")
    assert r.status == 200 and r.json() == {"name": MODEL, "ready": True}
    other = store_server.request("GET", "/v2/models/resnet50/ready")
    assert other.status == 404 and "error" in other.json()


def test_model_metadata_describes_the_onnx_graph_from_the_manifest(store_server: Server):
    manifest = json.loads((TINY / "manifest.json").read_text())
    key = store_server.key("read")
    body = store_server.request("GET", f"/v2/models/{MODEL}", key).json()
    assert body["name"] == MODEL and body["platform"] == "onnxruntime"
    assert body["versions"] in (["0.0.1-test"], ["0.0.2-test"])
    [image] = body["inputs"]
    assert image["name"] == manifest["input"]["tensor"] and image["datatype"] == "FP32"
    assert image["shape"] == [-1, 3, -1, -1] and image["parameters"]["scale"] == manifest["input"]["scale"]
    seg, heat = body["outputs"]
    assert seg["name"] == "seg_logits" and seg["parameters"]["classes"] == ["root", "shoot", "seed", "occluded_root"]
    assert heat["parameters"]["kinds"] == manifest["outputs"]["landmarks"]["kinds"]
    assert heat["parameters"]["stride"] == 4


def test_metadata_of_another_model_is_404_and_needs_a_key(store_server: Server):
    r = store_server.request("GET", "/v2/models/resnet50", store_server.key("read"))
    assert r.status == 404 and "resnet50" in r.json()["detail"]
    assert store_server.request("GET", f"/v2/models/{MODEL}").status == 401


def test_server_metadata_names_the_server(store_server: Server):
    body = store_server.request("GET", "/v2", store_server.key("read")).json()
    assert body["name"] == "hades-perception" and body["version"]
