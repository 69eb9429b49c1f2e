"""The Prometheus endpoint, scraped over real HTTP as an operator's Prometheus would:
counters read at scrape time, stage times in a histogram, the served model and drift
as labelled series, one registry per instance, bound to loopback, and the alert rules
and dashboard naming only metrics the endpoint exposes."""

from __future__ import annotations

import dataclasses
import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("prometheus_client", reason="the optional `metrics` extra is not installed")

import yaml
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from hades_perception.monitoring.metrics import DRIFT_LEVELS, Metrics
from hades_perception.serving.worker import Stats

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "deploy" / "monitoring"
NODE = "/hades/perception"
MODEL = {"name": "rootnav", "version": "7", "engine": "CPUExecutionProvider"}
STAGES = ("preprocess", "engine", "postprocess", "monitoring", "total")

Serve = Callable[..., tuple[Metrics, int]]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start Metrics instances on 127.0.0.1, any free port; close them all afterwards."""
    started: list[Metrics] = []

    def start(
        node: str = NODE,
        stats: Callable[[], Stats] = Stats,
        drift: Callable[[], tuple[str, str]] | None = None,
        model: Callable[[], Mapping[str, str]] = lambda: MODEL,
    ) -> tuple[Metrics, int]:
        metrics = Metrics(node, stats, drift, model)
        started.append(metrics)
        return metrics, metrics.start()

    yield start
    for metrics in started:
        metrics.close()


def scrape(port: int) -> dict[str, Metric]:
    """GET /metrics as Prometheus does; the metric families by name."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(families: Mapping[str, Metric], sample: str, **labels: str) -> float:
    """The value of the one sample called `sample` whose labels include `labels`."""
    found = [
        s.value
        for family in families.values()
        for s in family.samples
        if s.name == sample and labels.items() <= s.labels.items()
    ]
    assert len(found) == 1, f"{sample}{labels}: {len(found)} samples"
    return float(found[0])


def sample_names(families: Mapping[str, Metric]) -> set[str]:
    return {s.name for family in families.values() for s in family.samples}


class TestCounters:
    def test_counters_are_the_stats_the_callback_returns_when_prometheus_scrapes(self, serve: Serve) -> None:
        stats = Stats(received=10, processed=7, dropped=2, errors=1, last_error="ValueError: bad frame")
        _, port = serve(stats=lambda: dataclasses.replace(stats))

        first = scrape(port)
        assert value(first, "hades_frames_received_total", node=NODE) == 10
        assert value(first, "hades_frames_processed_total", node=NODE) == 7
        assert value(first, "hades_frames_dropped_total", node=NODE) == 2
        assert value(first, "hades_frame_errors_total", node=NODE) == 1
        assert first["hades_frames_received"].type == "counter"

        stats.received, stats.processed, stats.dropped, stats.errors = 25, 20, 4, 1
        second = scrape(port)
        assert value(second, "hades_frames_received_total", node=NODE) == 25
        assert value(second, "hades_frames_processed_total", node=NODE) == 20
        assert value(second, "hades_frames_dropped_total", node=NODE) == 4
        assert value(second, "hades_frame_errors_total", node=NODE) == 1

    def test_a_failing_callback_leaves_its_series_out_and_the_scrape_succeeds(self, serve: Serve) -> None:
        """A failed scrape would read as `up == 0`: HadesNodeDown for a node still working."""

        def broken() -> dict[str, str]:
            raise RuntimeError("no model loaded")

        _, port = serve(stats=lambda: Stats(received=3), model=broken)
        families = scrape(port)
        assert "hades_model_info" not in families
        assert value(families, "hades_frames_received_total", node=NODE) == 3


class TestStageHistogram:
    def test_observe_puts_each_stage_in_seconds_into_its_own_series(self, serve: Serve) -> None:
        metrics, port = serve()
        metrics.observe({"preprocess": 4.0, "engine": 20.0, "total": 30.0})
        metrics.observe({"preprocess": 6.0, "engine": 40.0, "total": 1500.0})

        families = scrape(port)
        assert families["hades_stage_seconds"].type == "histogram"
        for stage, count, total in (("preprocess", 2, 0.010), ("engine", 2, 0.060), ("total", 2, 1.530)):
            assert value(families, "hades_stage_seconds_count", node=NODE, stage=stage) == count
            assert value(families, "hades_stage_seconds_sum", node=NODE, stage=stage) == pytest.approx(total)
        # 20 ms is under the 25 ms bucket edge, 40 ms is not; 1.5 s lands between 1 s and 2.5 s.
        assert value(families, "hades_stage_seconds_bucket", node=NODE, stage="engine", le="0.025") == 1
        assert value(families, "hades_stage_seconds_bucket", node=NODE, stage="total", le="1.0") == 1
        assert value(families, "hades_stage_seconds_bucket", node=NODE, stage="total", le="2.5") == 2
        stages = {s.labels["stage"] for s in families["hades_stage_seconds"].samples}
        assert stages == {"preprocess", "engine", "total"}, "a stage never observed has no series"

    def test_buckets_reach_from_a_millisecond_to_ten_seconds(self, serve: Serve) -> None:
        metrics, port = serve()
        metrics.observe({"total": 1.0})
        edges = {
            s.labels["le"]
            for s in scrape(port)["hades_stage_seconds"].samples
            if s.name == "hades_stage_seconds_bucket"
        }
        assert {"0.001", "5.0", "10.0", "+Inf"} <= edges


class TestModelAndDrift:
    def test_the_served_model_is_an_info_series_labelled_with_name_version_and_engine(self, serve: Serve) -> None:
        served = dict(MODEL)
        _, port = serve(model=lambda: served)
        assert value(scrape(port), "hades_model_info", node=NODE, **MODEL) == 1

        served["version"] = "8"  # a model swap shows at the next scrape
        families = scrape(port)
        assert value(families, "hades_model_info", node=NODE, version="8") == 1
        [sample] = families["hades_model_info"].samples
        assert sample.labels == {"node": NODE, **MODEL, "version": "8"}

    @pytest.mark.parametrize(("level", "status"), [("OK", 0), ("WARN", 1), ("ERROR", 2)])
    def test_drift_status_is_0_1_2_for_ok_warn_error(self, serve: Serve, level: str, status: int) -> None:
        _, port = serve(drift=lambda: (level, "input.contrast"))
        families = scrape(port)
        [sample] = families["hades_drift_status"].samples
        assert sample.labels == {"node": NODE} and sample.value == status
        assert value(families, "hades_drift_signal_info", node=NODE, signal="input.contrast") == 1

    def test_no_worst_signal_means_no_signal_series(self, serve: Serve) -> None:
        _, port = serve(drift=lambda: ("OK", ""))
        families = scrape(port)
        assert value(families, "hades_drift_status", node=NODE) == 0
        assert "hades_drift_signal_info" not in families

    def test_without_a_drift_callback_no_drift_series_exist(self, serve: Serve) -> None:
        _, port = serve(drift=None)
        assert not {name for name in scrape(port) if name.startswith("hades_drift")}

    def test_an_unknown_drift_level_is_left_out_rather_than_guessed(self, serve: Serve) -> None:
        _, port = serve(drift=lambda: ("MAYBE", "input.noise"))
        families = scrape(port)
        assert "hades_drift_status" not in families
        assert "hades_frames_received" in families

    def test_the_levels_are_those_of_the_drift_monitor(self) -> None:
        from hades_perception.monitoring.drift import LEVEL_NAMES

        assert {name: level for level, name in LEVEL_NAMES.items()} == DRIFT_LEVELS


class TestServer:
    def test_two_instances_in_one_process_keep_their_own_registries_and_ports(self, serve: Serve) -> None:
        a, port_a = serve(node="/robot_a/perception", stats=lambda: Stats(received=1))
        b, port_b = serve(node="/robot_b/perception", stats=lambda: Stats(received=2))
        a.observe({"total": 10.0})

        assert port_a != port_b and a.registry is not b.registry
        seen_a, seen_b = scrape(port_a), scrape(port_b)
        assert value(seen_a, "hades_frames_received_total", node="/robot_a/perception") == 1
        assert value(seen_b, "hades_frames_received_total", node="/robot_b/perception") == 2
        assert {s.labels["node"] for f in seen_a.values() for s in f.samples} == {"/robot_a/perception"}
        assert {s.labels["node"] for f in seen_b.values() for s in f.samples} == {"/robot_b/perception"}
        assert "hades_stage_seconds_count" not in sample_names(seen_b)

    def test_it_listens_on_loopback_only_and_close_frees_the_port(self, serve: Serve) -> None:
        metrics, port = serve()
        assert port > 0
        assert metrics.address == ("127.0.0.1", port)
        scrape(port)

        metrics.close()
        assert metrics.address is None
        with pytest.raises(urllib.error.URLError, match="refused"):
            scrape(port)
        metrics.close()  # a second close is harmless

        again = Metrics(NODE, Stats, None, lambda: MODEL)
        try:
            assert again.start(port=port) == port, "the port is free again"
        finally:
            again.close()

    def test_starting_twice_is_refused(self, serve: Serve) -> None:
        metrics, _ = serve()
        with pytest.raises(RuntimeError, match="already serving"):
            metrics.start()


def _metric_names(expression: str) -> set[str]:
    """hades_* metric names in a PromQL expression; quoted label values are not names."""
    return set(re.findall(r"\bhades_[a-z_]+", re.sub(r'"[^"]*"', "", expression)))


def _dashboard_queries(node: Any) -> Iterator[str]:
    """Every PromQL string in the dashboard: panel targets' expr, template variable queries."""
    if isinstance(node, dict):
        for key, item in node.items():
            if key in ("expr", "query", "definition") and isinstance(item, str):
                yield item
            else:
                yield from _dashboard_queries(item)
    elif isinstance(node, list):
        for item in node:
            yield from _dashboard_queries(item)


class TestRulesAndDashboardMatchTheCode:
    @pytest.fixture
    def exposed(self, serve: Serve) -> set[str]:
        """Every name a fully populated endpoint exposes: families and their samples."""
        metrics, port = serve(stats=lambda: Stats(1, 1, 0, 0), drift=lambda: ("WARN", "input.noise"))
        metrics.observe(dict.fromkeys(STAGES, 5.0))
        families = scrape(port)
        names = set(families) | sample_names(families)
        # A histogram's _bucket/_count/_sum series belong to its family.
        for name, family in families.items():
            if family.type == "histogram":
                names |= {name + suffix for suffix in ("_bucket", "_count", "_sum")}
        return names

    def test_every_metric_in_the_alert_rules_is_exposed(self, exposed: set[str]) -> None:
        groups = yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        assert {rule["alert"] for rule in rules} >= {
            "HadesNodeDown",
            "HadesDriftWarn",
            "HadesDriftError",
            "HadesFramesDropped",
            "HadesFrameErrors",
            "HadesSlowFrames",
        }
        for rule in rules:
            assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
            assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        used = set().union(*(_metric_names(rule["expr"]) for rule in rules))
        assert "up" in " ".join(rule["expr"] for rule in rules)  # HadesNodeDown reads Prometheus' own `up`
        assert used >= {"hades_drift_status", "hades_frames_dropped_total", "hades_stage_seconds_bucket"}
        assert used <= exposed, f"not exposed: {sorted(used - exposed)}"

    def test_every_metric_in_the_dashboard_is_exposed(self, exposed: set[str]) -> None:
        dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
        queries = list(_dashboard_queries(dashboard))
        used = set().union(*(_metric_names(q) for q in queries))
        assert "label_values(hades_frames_received_total, node)" in queries
        assert used >= {
            "hades_frames_received_total",
            "hades_frames_processed_total",
            "hades_frames_dropped_total",
            "hades_frame_errors_total",
            "hades_stage_seconds_bucket",
            "hades_drift_status",
            "hades_model_info",
        }
        assert used <= exposed, f"not exposed: {sorted(used - exposed)}"
