"""Benchmark of the perception node, measured the way ros2_benchmark measures:
frames preloaded in memory, published at fixed rates, a separate monitor process
timestamping what comes back. Results are written as JSON; this is not a test.

    source scripts/env.sh
    python benchmarks/node_benchmark.py --out benchmarks/results/node_cpu.json [--frames 6] [--soak 60]

Measures, on full-size 4202x3006 frames with the default model:
  1. engine alone (in-process Pipeline, no ROS): engine time and whole-pipeline time per frame
  2. node end-to-end latency at a fixed low rate (--latency-factor x engine-alone throughput,
     so no frame waits for another), and its breakdown from the node's own timing
     (transport, conversion, preprocess, engine, postprocess, publish)
  3. ratio of node latency to engine-alone time
  4. the highest input rate with under 5 % dropped frames (rate sweep), against engine-alone throughput
  5. twice that rate for --soak seconds: node memory over time, latency, drops
Steps 2-4 run twice: with a consumer of landmarks/certainty only, and with a subscriber to
`masks` as well (the node builds that 63 MB message only while someone subscribes).
The host's steal time (CPU taken by other virtual machines) is recorded per phase.
All ROS traffic stays on this machine (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, own domain id).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from hades_perception_ros.launching import start_node, stop

ROOT = Path(__file__).resolve().parents[1]
NS = "/bench"
CAMERA = f"{NS}/camera/image_raw"

MONITOR = textwrap.dedent("""
    import json, sys, time, rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from hades_perception_msgs.msg import Certainty
    from diagnostic_msgs.msg import DiagnosticArray
    out = open(sys.argv[1], "a", buffering=1)
    rclpy.init()
    node = rclpy.create_node("bench_monitor")
    def on_cert(m):
        out.write(json.dumps({"t": time.time(), "stamp": m.header.stamp.sec + m.header.stamp.nanosec * 1e-9}) + "\\n")
    def on_diag(a):
        for s in a.status:
            if s.hardware_id == sys.argv[2]:
                out.write(json.dumps({"t": time.time(), "diag": {kv.key: kv.value for kv in s.values}}) + "\\n")
    node.create_subscription(Certainty, sys.argv[2] + "/certainty", on_cert,
                             QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    try:
        rclpy.spin(node)
    except Exception:  # terminated by the benchmark: nothing to report
        pass
""")


MASKS_MONITOR = textwrap.dedent("""
    import json, sys, time, rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from hades_perception_msgs.msg import SegmentationMasks
    from sensor_msgs.msg import Image
    out = open(sys.argv[1], "a", buffering=1)
    rclpy.init()
    node = rclpy.create_node("bench_masks_monitor")
    def on_view(topic):  # the viewing images too: every output has a subscriber
        return lambda raw: out.write(json.dumps({"t": time.time(), "view": topic}) + "\\n")
    for topic in ("confidence", "masks/colour", "masks/root", "masks/shoot", "masks/seed", "masks/occluded_root"):
        node.create_subscription(Image, sys.argv[2] + "/" + topic, on_view(topic),
                                 QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE), raw=True)
    def on_masks(raw):  # serialised: the stamp is the first field after the CDR header
        sec, ns = int.from_bytes(raw[4:8], "little", signed=True), int.from_bytes(raw[8:12], "little")
        out.write(json.dumps({"t": time.time(), "masks_stamp": sec + ns * 1e-9}) + "\\n")
    node.create_subscription(SegmentationMasks, sys.argv[2] + "/masks", on_masks,
                             QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE), raw=True)
    try:
        rclpy.spin(node)
    except Exception:  # terminated by the benchmark: nothing to report
        pass
""")


def machine_ticks() -> list[int]:
    """The whole machine's CPU time since boot in clock ticks, by kind (user, nice,
    system, idle, iowait, irq, softirq, steal, ...), from /proc/stat."""
    return [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]


def cpu_times() -> tuple[int, int]:
    """(steal, total) ticks of the whole machine."""
    ticks = machine_ticks()
    return ticks[7], sum(ticks[:8])


def steal_share(since: tuple[int, int]) -> float:
    """Share of the CPU time since `since` that the hypervisor gave to other machines."""
    steal, total = cpu_times()
    return (steal - since[0]) / max(1, total - since[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {
        "n": len(values),
        "p50": float(np.percentile(values, 50)),
        "p90": float(np.percentile(values, 90)),
        "p99": float(np.percentile(values, 99)),
        "max": float(max(values)),
    }


def make_frames(n: int, seed: int) -> list[np.ndarray]:
    from hades_training.synth.appearance import PRESETS
    from hades_training.synth.generate import make_plate

    return [make_plate(seed, i, PRESETS["normal"]).image for i in range(n)]


def frame_messages(frames: list[np.ndarray]) -> list[Any]:
    """Serialised once, like ros2_benchmark's preloaded playback buffer."""
    from sensor_msgs.msg import Image

    out = []
    for f in frames:
        m = Image(height=f.shape[0], width=f.shape[1], encoding="rgb8", step=f.shape[1] * 3, data=f.tobytes())
        m.header.frame_id = "hades_camera"
        out.append(m)
    return out


def publish_stamped(pub: Any, msg: Any) -> float:
    """Stamp with the publish time (the latency clock's start) and publish; returns the stamp."""
    now = time.time()
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(now), int((now % 1) * 1e9)
    pub.publish(msg)
    return float(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)


def engine_alone(model: Path, frames: list[np.ndarray], providers: tuple[str, ...]) -> dict[str, Any]:
    """The pipeline the node serves (same providers, precision auto), in this process."""
    from hades_perception.inference.loading import load_pipeline

    pipe = load_pipeline(model, providers=providers)
    pipe(frames[0])  # warm-up
    total, engine = [], []
    for f in frames:
        p = pipe(f)
        total.append(p.timing_ms["total"])
        engine.append(p.timing_ms["engine"])
    return {
        "engine": pipe.engine.name,
        "pipeline_ms_median": float(np.median(total)),
        "engine_ms_median": float(np.median(engine)),
        "pipeline_ms": total,
        "engine_ms": engine,
        "throughput_hz": 1000.0 / float(np.median(total)),
    }


class Bench:
    def __init__(self, model: Path, work: Path, providers: tuple[str, ...], node_params: dict[str, Any]) -> None:
        import rclpy
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        self.work = work
        params = {
            "model_bundle_path": str(model),
            "execution_providers": list(providers),
            "qos_reliability": "reliable",
            "qos_depth": 10,
            "diagnostics_period": 1.0,
            **node_params,
        }
        self.node = start_node(params, work, NS, CAMERA, log=work / "node.log")
        self.monitor_log = work / "monitor.jsonl"
        self.monitor = subprocess.Popen([sys.executable, "-c", MONITOR, str(self.monitor_log), NS])
        self.masks_monitor: subprocess.Popen[bytes] | None = None
        rclpy.init()
        self.rclpy = rclpy
        self.ros = rclpy.create_node("bench_player")
        self.pub = self.ros.create_publisher(
            Image, CAMERA, QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        )
        deadline = time.time() + 120
        while self.pub.get_subscription_count() < 1 and time.time() < deadline:
            time.sleep(0.2)
        if self.pub.get_subscription_count() < 1:
            raise RuntimeError(f"node did not come up; see {work / 'node.log'}")
        time.sleep(2)

    def publish(self, msg: Any) -> float:
        return publish_stamped(self.pub, msg)

    def masks_subscriber(self, on: bool) -> None:
        """Start or stop a process that subscribes to `masks` (serialised, not decoded)."""
        if on and self.masks_monitor is None:
            self.masks_monitor = subprocess.Popen([sys.executable, "-c", MASKS_MONITOR, str(self.monitor_log), NS])
            time.sleep(5)  # discovery
        elif not on and self.masks_monitor is not None:
            self.masks_monitor.terminate()
            self.masks_monitor.wait(10)
            self.masks_monitor = None
            time.sleep(2)

    def answers(self) -> tuple[dict[float, float], list[dict[str, Any]], dict[float, float]]:
        """Arrival times of certainty and masks by stamp, and the diagnostics seen."""
        got, diags, masks = {}, [], {}
        for line in self.monitor_log.read_text().splitlines():
            d = json.loads(line)
            if "stamp" in d:
                got[round(d["stamp"], 6)] = d["t"]
            elif "masks_stamp" in d:
                masks[round(d["masks_stamp"], 6)] = d["t"]
            elif "total_p50_ms" in d.get("diag", {}):  # the node's frame status, not drift or store
                diags.append(d)
        return got, diags, masks

    def run_at(
        self,
        msgs: list[Any],
        rate_hz: float,
        seconds: float | None = None,
        n: int | None = None,
        sample_memory: bool = False,
    ) -> dict[str, Any]:
        period = 1.0 / rate_hz
        sent, memory = [], []
        cpu0 = cpu_times()
        t0 = time.time()
        i = 0
        while (seconds is not None and time.time() - t0 < seconds) or (n is not None and i < n):
            target = t0 + i * period
            if time.time() < target:
                time.sleep(target - time.time())
            sent.append(self.publish(msgs[i % len(msgs)]))
            if sample_memory:
                memory.append({"t": round(time.time() - t0, 1), "rss_mb": round(rss_mb(self.node.pid), 1)})
            i += 1
        steal = steal_share(cpu0)
        time.sleep(max(5.0, 3 * period))
        got, diags, masks = self.answers()
        lat = [(got[round(s, 6)] - s) * 1e3 for s in sent if round(s, 6) in got]
        masks_lat = [(masks[round(s, 6)] - s) * 1e3 for s in sent if round(s, 6) in masks]
        answered = len(lat)
        return {
            "rate_hz": rate_hz,
            "sent": len(sent),
            "answered": answered,
            "dropped_share": 1 - answered / len(sent),
            "latency_ms": percentiles(lat),
            "masks_subscribed": self.masks_monitor is not None,
            "masks_answered": len(masks_lat),
            "masks_latency_ms": percentiles(masks_lat),
            "steal_share": steal,
            "memory": memory,
            "last_diagnostics": diags[-1]["diag"] if diags else None,
        }

    def close(self) -> None:
        self.ros.destroy_node()
        self.rclpy.shutdown()
        self.masks_subscriber(False)
        for p in (self.node, self.monitor):
            stop(p)


def undisturbed(run: Callable[[], dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """Run a phase again (up to --retries times) while the hypervisor took more than
    --steal-limit of the CPU during it (this is a shared virtual machine); the least
    disturbed try is kept, the others are listed in it."""
    tries = [run()]
    while tries[-1]["steal_share"] > args.steal_limit and len(tries) <= args.retries:
        print(f"    steal {tries[-1]['steal_share']:.1%} > {args.steal_limit:.0%}: measuring again")
        tries.append(run())
    best = min(tries, key=lambda r: r["steal_share"])
    best["discarded_disturbed_tries"] = [
        {k: r[k] for k in ("steal_share", "dropped_share", "latency_ms")} for r in tries if r is not best
    ]
    return best


def sustained(sweep: list[dict[str, Any]], low_p50_ms: float, throughput_hz: float) -> dict[str, Any]:
    """The highest rate with under 5 % dropped frames, and the highest with that and no
    backlog building up (latency p90 within 1.25 x the low-rate p50). With reliable input
    QoS, DDS holds up to qos_depth frames for the node, so an overloaded 10-frame run can
    drop nothing while its latency grows: the second figure is the one to trust."""
    by_drops = [r["rate_hz"] for r in sweep if r["dropped_share"] < 0.05]
    no_backlog = [
        r["rate_hz"]
        for r in sweep
        if r["dropped_share"] < 0.05 and r["latency_ms"] and r["latency_ms"]["p90"] <= 1.25 * low_p50_ms
    ]
    best, best_nb = max(by_drops, default=None), max(no_backlog, default=None)
    return {
        "max_rate_under_5pct_drops_hz": best,
        "max_rate_vs_engine_alone_throughput": best / throughput_hz if best else None,
        "max_rate_under_5pct_drops_no_backlog_hz": best_nb,
        "max_rate_no_backlog_vs_engine_alone_throughput": best_nb / throughput_hz if best_nb else None,
    }


def measure_mode(bench: Bench, msgs: list[Any], alone: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Latency at a low fixed rate, the rate sweep and the soak, for one set of subscribers."""
    out: dict[str, Any] = {}
    low = args.latency_factor * alone["throughput_hz"]
    r = undisturbed(lambda: bench.run_at(msgs, low, n=args.latency_frames), args)
    _, diags, _ = bench.answers()
    lat = r["latency_ms"] or {}
    out["latency_phase"] = r
    out["node_latency_ms_median"] = lat.get("p50")
    out["latency_breakdown_p50_ms"] = {
        k.removesuffix("_p50_ms"): float(v)
        for k, v in (diags[-1]["diag"] if diags else {}).items()
        if k.endswith("_p50_ms")
    }
    out["ratio_node_to_pipeline_alone"] = lat["p50"] / alone["pipeline_ms_median"] if lat else None
    out["ratio_node_to_engine_alone"] = lat["p50"] / alone["engine_ms_median"] if lat else None
    # The node's own work per frame (what issue 15 measures): its stages from taking the
    # frame off the queue to the last publish on the frame's thread, against its own engine
    # stage. The full-size images (masks, viewing) are built and published on a thread of
    # their own while the next frame runs: their time is `images`, reported beside it.
    b = out["latency_breakdown_p50_ms"]
    own = [b.get(k) for k in ("conversion", "preprocess", "engine", "postprocess", "monitoring", "publish")]
    if all(v is not None for v in own) and b.get("engine"):
        out["node_work_p50_ms"] = sum(v for v in own if v is not None)
        out["ratio_node_work_to_engine"] = out["node_work_p50_ms"] / b["engine"]
        if b.get("images") is not None:
            out["ratio_node_work_and_images_to_engine"] = (out["node_work_p50_ms"] + b["images"]) / b["engine"]
    if diags:
        out["images_dropped"] = diags[-1]["diag"].get("images_dropped")
    print(
        f"  latency at {low:.3f} Hz: p50 {lat.get('p50', float('nan')):.0f} ms (masks p50 "
        f"{(r['masks_latency_ms'] or {}).get('p50', float('nan')):.0f} ms); ratio to pipeline alone "
        f"{out['ratio_node_to_pipeline_alone'] or float('nan'):.3f}; node work / engine "
        f"{out.get('ratio_node_work_to_engine', float('nan')):.3f}; steal {r['steal_share']:.1%}; "
        f"breakdown {out['latency_breakdown_p50_ms']}"
    )
    sweep = []
    for factor in (0.5, 0.7, 0.8, 0.85, 0.9, 0.95, 1.05):
        rate = factor * alone["throughput_hz"]
        r = undisturbed(partial(bench.run_at, msgs, rate, n=args.sweep_frames), args)
        sweep.append(r)
        print(
            f"  {rate:.3f} Hz ({factor:.2f} x): dropped {r['dropped_share']:.1%}, p50 "
            f"{(r['latency_ms'] or {}).get('p50', float('nan')):.0f} ms, steal {r['steal_share']:.1%}"
        )
    out["rate_sweep"] = sweep
    out.update(sustained(sweep, lat.get("p50", float("nan")), alone["throughput_hz"]))
    rates = {k: v for k, v in out.items() if k.startswith("max_rate")}
    print(f"  sustained: {rates}")
    soak_rate = 2 * (out["max_rate_under_5pct_drops_no_backlog_hz"] or alone["throughput_hz"])
    soak = bench.run_at(msgs, soak_rate, seconds=args.soak, sample_memory=True)
    mem = [m["rss_mb"] for m in soak["memory"]]
    half = len(mem) // 2
    soak["rss_mb_first_half_max"] = max(mem[:half]) if half else None
    soak["rss_mb_second_half_max"] = max(mem[half:]) if mem else None
    out["soak_at_twice_max_rate"] = soak
    # Saturated throughput: frames answered a second while the camera sends twice what the
    # node can take. With the node's two stages (engine of one frame beside the previous
    # frame's postprocessing), its frame interval can come below the sum of its stages.
    answered_hz = soak["answered"] / args.soak
    out["saturated_answered_hz"] = answered_hz
    if answered_hz:
        out["saturated_vs_pipeline_alone_throughput"] = answered_hz / alone["throughput_hz"]
        out["saturated_frame_interval_over_engine_alone"] = 1000.0 / answered_hz / alone["engine_ms_median"]
    print(
        f"  soak {soak_rate:.3f} Hz for {args.soak:.0f} s: dropped {soak['dropped_share']:.1%}, latency "
        f"{soak['latency_ms']}, rss {soak['rss_mb_first_half_max']} -> {soak['rss_mb_second_half_max']} MB; "
        f"answered {answered_hz:.3f} Hz = {out.get('saturated_vs_pipeline_alone_throughput', 0):.2f} x pipeline alone, "
        f"frame interval / engine alone {out.get('saturated_frame_interval_over_engine_alone', float('nan')):.2f}"
    )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models" / "hades-seedlings"))
    ap.add_argument("--frames", type=int, default=4, help="distinct preloaded frames")
    ap.add_argument("--latency-frames", type=int, default=12, help="frames for the latency figure")
    ap.add_argument("--latency-factor", type=float, default=0.5, help="latency rate, x engine-alone throughput")
    ap.add_argument("--sweep-frames", type=int, default=10, help="frames per rate in the sweep")
    ap.add_argument("--soak", type=float, default=60.0, help="seconds at twice the sustainable rate")
    ap.add_argument("--steal-limit", type=float, default=0.05, help="steal share above which a phase is redone")
    ap.add_argument("--retries", type=int, default=2, help="times a disturbed phase is redone")
    ap.add_argument(
        "--providers",
        default="CPUExecutionProvider",
        help="execution providers of the node and of engine alone (OpenVINO: run this script with "
        "PYTHONPATH=.venv/openvino-runtime, docs/engines.md)",
    )
    ap.add_argument(
        "--viewing-downsample", type=int, default=1, help="the node's viewing_downsample (viewing images at 1/N size)"
    )
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "node_cpu.json"))
    args = ap.parse_args()
    providers = tuple(args.providers.split(","))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(102, 160)))
    frames = make_frames(args.frames, seed=900)
    result: dict[str, Any] = {
        "machine": {"cores": os.cpu_count(), "uname": " ".join(os.uname())},
        "model": args.model,
        "frame": "4202x3006 rgb8 (36 MB)",
        "args": vars(args),
    }
    cpu0 = cpu_times()
    alone = engine_alone(Path(args.model), frames, providers)
    alone["steal_share"] = steal_share(cpu0)
    result["engine_alone"] = alone
    print(
        f"engine alone ({alone['engine']}): pipeline {alone['pipeline_ms_median']:.0f} ms, "
        f"engine {alone['engine_ms_median']:.0f} ms, "
        f"steal {alone['steal_share']:.1%}"
    )
    modes = {"landmarks_and_certainty": False, "all_outputs_with_masks": True}
    for mode, masks in modes.items():
        print(f"{mode}:")
        with tempfile.TemporaryDirectory() as tmp:
            # A fresh node: its timing windows are this mode's.
            bench = Bench(Path(args.model), Path(tmp), providers, {"viewing_downsample": args.viewing_downsample})
            try:
                bench.masks_subscriber(masks)
                result[mode] = measure_mode(bench, frame_messages(frames), alone, args)
            finally:
                bench.close()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
