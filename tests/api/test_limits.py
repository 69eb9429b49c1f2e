"""Closed by default: CORS (no browser on another origin may call the API unless the
server names that origin) and a per-key rate limit (429 with Retry-After)."""

from __future__ import annotations

from tests.api.conftest import CORS_ORIGIN, Server

ORIGIN_HEADER = "Access-Control-Allow-Origin"


def test_cors_is_closed_by_default(store_server: Server):
    key = store_server.key("read")
    r = store_server.request("GET", "/v1/models", key, headers={"Origin": CORS_ORIGIN})
    assert r.status == 200 and ORIGIN_HEADER not in r.headers
    preflight = store_server.request(
        "OPTIONS",
        "/v1/models",
        headers={"Origin": CORS_ORIGIN, "Access-Control-Request-Method": "GET"},
    )
    assert ORIGIN_HEADER not in preflight.headers


def test_cors_opens_to_the_origins_named_with_cors_origin_only(bundle_server: Server):
    key = bundle_server.key("read")
    r = bundle_server.request("GET", "/v1/models", key, headers={"Origin": CORS_ORIGIN})
    assert r.headers[ORIGIN_HEADER] == CORS_ORIGIN
    other = bundle_server.request("GET", "/v1/models", key, headers={"Origin": "http://elsewhere.example"})
    assert ORIGIN_HEADER not in other.headers
    preflight = bundle_server.request(
        "OPTIONS",
        "/v1/predict",
        headers={
            "Origin": CORS_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status == 200 and preflight.headers[ORIGIN_HEADER] == CORS_ORIGIN


def test_a_key_past_its_rate_gets_429_with_retry_after_and_other_keys_go_on(rate_limited_server: Server):
    busy, other = rate_limited_server.key("read"), rate_limited_server.key("read")
    for _ in range(3):  # the server allows 3 a minute
        assert rate_limited_server.request("GET", "/v1/models", busy).status == 200
    r = rate_limited_server.request("GET", "/v1/models", busy)
    assert r.status == 429, r
    assert r.json()["error"] == "rate limited" and "3 requests a minute" in r.json()["detail"]
    assert 1 <= int(r.headers["Retry-After"]) <= 20
    assert rate_limited_server.request("GET", "/v1/models", other).status == 200
    assert rate_limited_server.request("GET", "/v2/health/ready").status == 200  # probes carry no key
