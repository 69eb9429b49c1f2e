"""The API's settings mean what the node's parameters mean, and its keys file keeps
only hashes; checked without a server."""

from __future__ import annotations

import pytest

from hades_perception.api.keys import PREFIX, KeyFile, parse_scopes
from hades_perception.api.limits import RateLimiter
from hades_perception.api.settings import MODEL_DEFAULTS, MONITORING_DEFAULTS, ServeSettings, parse_rate


def test_the_model_settings_have_the_node_s_names_and_defaults():
    params = pytest.importorskip("hades_perception_ros.params", reason="the ROS package is not importable here")
    for name, default in {**MODEL_DEFAULTS, **MONITORING_DEFAULTS}.items():
        assert params.BY_NAME[name].default == default, name


def test_settings_serve_the_shipped_model_on_loopback_by_default():
    settings = ServeSettings()
    assert settings.host == "127.0.0.1" and settings.cors_origins == ()
    assert settings.param("model_bundle_path") == "models/hades-seedlings" and settings.param("store_url") == ""


def test_jobs_and_datasets_live_in_the_data_dir_unless_told_otherwise(monkeypatch, tmp_path):
    monkeypatch.setenv("HADES_DATA_DIR", str(tmp_path))
    settings = ServeSettings()
    assert settings.work_dir == tmp_path / "api" and settings.data_dirs == ()
    assert settings.train_command[-1].endswith("hades-train") or settings.train_command[-1] == "hades_training.cli"


def test_a_drift_minimum_above_its_window_is_refused():
    with pytest.raises(ValueError, match="min <= window"):
        ServeSettings(drift_window=10, drift_min_frames=20)


def test_an_unknown_model_setting_is_refused():
    with pytest.raises(ValueError, match="unknown model settings"):
        ServeSettings(model={"model_path": "x"})


@pytest.mark.parametrize(("text", "per_min"), [("120/min", 120.0), ("2/s", 120.0), ("600/hour", 10.0), ("off", 0.0)])
def test_rate_limits_read_as_requests_per_minute(text: str, per_min: float):
    assert parse_rate(text) == per_min


@pytest.mark.parametrize("text", ["fast", "10", "-1/min", "5/day"])
def test_a_rate_limit_that_is_not_n_per_unit_is_refused(text: str):
    with pytest.raises(ValueError, match="N/min"):
        parse_rate(text)


def test_the_bucket_allows_a_burst_of_its_rate_then_one_per_interval():
    now = [0.0]
    limiter = RateLimiter(6, clock=lambda: now[0])  # 6 a minute: one every 10 s
    assert [limiter.take("a") for _ in range(6)] == [0.0] * 6
    assert limiter.take("a") == pytest.approx(10.0)
    assert limiter.take("b") == 0.0
    now[0] = 10.0
    assert limiter.take("a") == 0.0 and limiter.take("a") > 0


def test_a_key_verifies_until_revoked_and_a_changed_file_is_reread(tmp_path):
    keys = KeyFile(tmp_path / "keys.json")
    server_view = KeyFile(tmp_path / "keys.json")
    key = keys.create("bench", ("predict",))
    assert key.startswith(PREFIX)
    found = server_view.verify(key)
    assert found is not None and found.name == "bench" and found.scopes == ("predict",)
    assert server_view.verify(key + "x") is None
    keys.revoke("bench")
    assert server_view.verify(key) is None


def test_an_unreadable_keys_file_lets_no_key_in(tmp_path):
    path = tmp_path / "keys.json"
    key = KeyFile(path).create("someone", ("read",))
    path.write_text("{not json")
    assert KeyFile(path).verify(key) is None


def test_scopes_are_a_comma_separated_subset_of_the_known_ones():
    assert parse_scopes("read, predict,read") == ("read", "predict")
    with pytest.raises(ValueError, match="admin"):
        parse_scopes("read,admin")
