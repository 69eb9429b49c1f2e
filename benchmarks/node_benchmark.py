"""Benchmark of the perception node, measured the way ros2_benchmark measures:
frames preloaded in memory, published at fixed rates, a separate monitor process
timestamping what comes back. Results are written as JSON; this is not a test.

    source scripts/env.sh
    python benchmarks/node_benchmark.py --out benchmarks/results/node_cpu.json [--frames 6] [--soak 60]

Measures, on full-size 4202x3006 frames with the default model:
  1. engine alone (in-process Pipeline, no ROS): engine time and whole-pipeline time per frame
  2. node end-to-end latency, one frame at a time, and its breakdown from the node's own
     timing (transport, conversion, preprocess, engine, postprocess, publish)
  3. ratio of node latency to engine-alone time
  4. the highest input rate with under 5 % dropped frames (rate sweep), against engine-alone throughput
  5. twice that rate for --soak seconds: node memory over time, latency, drops
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
from pathlib import Path
from typing import Any

import numpy as np

from hades_perception.launching import start_node

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


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


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


def engine_alone(model: Path, frames: list[np.ndarray]) -> dict[str, Any]:
    from hades_perception.pipeline import Pipeline

    pipe = Pipeline.from_bundle(model, providers=("CPUExecutionProvider",))
    pipe(frames[0])  # warm-up
    total, engine = [], []
    for f in frames:
        p = pipe(f)
        total.append(p.timing_ms["total"])
        engine.append(p.timing_ms["engine"])
    return {
        "pipeline_ms_median": float(np.median(total)),
        "engine_ms_median": float(np.median(engine)),
        "pipeline_ms": total,
        "engine_ms": engine,
        "throughput_hz": 1000.0 / float(np.median(total)),
    }


class Bench:
    def __init__(self, model: Path, work: Path) -> None:
        import rclpy
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        self.work = work
        params = {
            "model_bundle_path": str(model),
            "execution_providers": ["CPUExecutionProvider"],
            "qos_reliability": "reliable",
            "qos_depth": 10,
            "diagnostics_period": 1.0,
        }
        self.node = start_node(params, work, NS, CAMERA, log=work / "node.log")
        self.monitor_log = work / "monitor.jsonl"
        self.monitor = subprocess.Popen([sys.executable, "-c", MONITOR, str(self.monitor_log), NS])
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

    def messages(self, frames: list[np.ndarray]) -> list[Any]:
        return frame_messages(frames)

    def publish(self, msg: Any) -> float:
        return publish_stamped(self.pub, msg)

    def answers(self) -> tuple[dict[float, float], list[dict[str, Any]]]:
        got, diags = {}, []
        for line in self.monitor_log.read_text().splitlines():
            d = json.loads(line)
            if "stamp" in d:
                got[round(d["stamp"], 6)] = d["t"]
            else:
                diags.append(d)
        return got, diags

    def wait_for(self, stamp: float, timeout: float) -> float | None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            got, _ = self.answers()
            if round(stamp, 6) in got:
                return got[round(stamp, 6)]
            time.sleep(0.02)
        return None

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
        time.sleep(max(5.0, 3 * period))
        got, diags = self.answers()
        lat = [(got[round(s, 6)] - s) * 1e3 for s in sent if round(s, 6) in got]
        answered = len(lat)
        return {
            "rate_hz": rate_hz,
            "sent": len(sent),
            "answered": answered,
            "dropped_share": 1 - answered / len(sent),
            "latency_ms": {
                "p50": float(np.percentile(lat, 50)),
                "p90": float(np.percentile(lat, 90)),
                "p99": float(np.percentile(lat, 99)),
                "max": float(max(lat)),
            }
            if lat
            else None,
            "memory": memory,
            "last_diagnostics": diags[-1]["diag"] if diags else None,
        }

    def close(self) -> None:
        self.ros.destroy_node()
        self.rclpy.shutdown()
        for p in (self.node, self.monitor):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models" / "hades-seedlings"))
    ap.add_argument("--frames", type=int, default=4, help="distinct preloaded frames")
    ap.add_argument("--sweep-frames", type=int, default=10, help="frames per rate in the sweep")
    ap.add_argument("--soak", type=float, default=60.0, help="seconds at twice the sustainable rate")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "node_cpu.json"))
    args = ap.parse_args()
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(102, 160)))
    frames = make_frames(args.frames, seed=900)
    result: dict[str, Any] = {
        "machine": {"cores": os.cpu_count(), "uname": " ".join(os.uname())},
        "model": args.model,
        "frame": "4202x3006 rgb8 (36 MB)",
    }
    alone = engine_alone(Path(args.model), frames)
    result["engine_alone"] = alone
    print(f"engine alone: pipeline {alone['pipeline_ms_median']:.0f} ms, engine {alone['engine_ms_median']:.0f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        bench = Bench(Path(args.model), Path(tmp))
        try:
            msgs = bench.messages(frames)
            lat = []
            for m in msgs * 2:  # one at a time: pure latency
                s = bench.publish(m)
                t = bench.wait_for(s, 120)
                if t is not None:
                    lat.append((t - s) * 1e3)
            _, diags = bench.answers()
            breakdown = {
                k.removesuffix("_p50_ms"): float(v)
                for k, v in (diags[-1]["diag"] if diags else {}).items()
                if k.endswith("_p50_ms")
            }
            result["node_latency_ms_median"] = float(np.median(lat))
            result["latency_breakdown_p50_ms"] = breakdown
            result["ratio_node_to_pipeline_alone"] = float(np.median(lat)) / alone["pipeline_ms_median"]
            result["ratio_node_to_engine_alone"] = float(np.median(lat)) / alone["engine_ms_median"]
            print(
                f"node latency {np.median(lat):.0f} ms; ratio to pipeline alone "
                f"{result['ratio_node_to_pipeline_alone']:.3f}; breakdown {breakdown}"
            )
            sweep = []
            best = None
            for factor in (0.5, 0.7, 0.85, 0.95, 1.05):
                rate = factor * alone["throughput_hz"]
                r = bench.run_at(msgs, rate, n=args.sweep_frames)
                sweep.append(r)
                print(
                    f"  {rate:.3f} Hz: dropped {r['dropped_share']:.1%}, p50 "
                    f"{(r['latency_ms'] or {}).get('p50', float('nan')):.0f} ms"
                )
                if r["dropped_share"] < 0.05:
                    best = rate
            result["rate_sweep"] = sweep
            result["max_rate_under_5pct_drops_hz"] = best
            result["max_rate_vs_engine_alone_throughput"] = best / alone["throughput_hz"] if best else None
            soak_rate = 2 * (best or alone["throughput_hz"])
            soak = bench.run_at(msgs, soak_rate, seconds=args.soak, sample_memory=True)
            mem = [m["rss_mb"] for m in soak["memory"]]
            half = len(mem) // 2
            soak["rss_mb_first_half_max"] = max(mem[:half]) if half else None
            soak["rss_mb_second_half_max"] = max(mem[half:]) if mem else None
            result["soak_at_twice_max_rate"] = soak
            print(
                f"soak {soak_rate:.3f} Hz for {args.soak:.0f} s: dropped {soak['dropped_share']:.1%}, "
                f"rss {soak['rss_mb_first_half_max']} -> {soak['rss_mb_second_half_max']} MB"
            )
        finally:
            bench.close()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
