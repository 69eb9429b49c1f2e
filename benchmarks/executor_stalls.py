"""Executor stalls with full-size frames, without the node: why the node spins a
SingleThreadedExecutor.

A player publishes 4202x3006 rgb8 frames (36 MB, reliable) at a fixed rate to a bare
rclpy subscriber in its own process; the subscriber records each frame's arrival and
ticks a 0.5 s timer. With `--executor multi` (rclpy MultiThreadedExecutor, 2 threads)
the timer stops and frames arrive 1-3 s late about once every 20 s; with `--executor
single` neither happens. `--raw` publishes pre-serialised bytes, `single-raw`/`multi-raw`
subscribes to serialised bytes (neither made transport faster here).

    source scripts/env.sh
    python benchmarks/executor_stalls.py --executor multi --rate 1 --seconds 60
    python benchmarks/executor_stalls.py --executor single --rate 1 --seconds 60

Results and the machine are in benchmarks/README.md ("Executor stalls").
All ROS traffic stays on this machine (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, own domain id).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import subprocess
import sys
import tempfile
import time

SUB = r"""
import json, sys, time, threading, rclpy
import numpy as np
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from sensor_msgs.msg import Image
out = open(sys.argv[1], "a", buffering=1)
executor_kind, depth, load = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
rclpy.init()
node = rclpy.create_node("probe_sub")
work = threading.Event()
def burn():
    a = np.random.rand(1500, 1500).astype(np.float32)
    while True:
        work.wait(); work.clear()
        t = time.time()
        while time.time() - t < load:
            a @ a
threading.Thread(target=burn, daemon=True).start()
RAW = executor_kind.endswith("raw")
def on_img(m):
    if RAW:
        sec = int.from_bytes(m[4:8], "little", signed=True); ns = int.from_bytes(m[8:12], "little")
        out.write(json.dumps({"t": time.time(), "stamp": sec + ns * 1e-9}) + "\n")
    else:
        out.write(json.dumps({"t": time.time(), "stamp": m.header.stamp.sec + m.header.stamp.nanosec * 1e-9}) + "\n")
    if load: work.set()
def tick():
    out.write(json.dumps({"t": time.time(), "tick": 1}) + "\n")
qos = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)
node.create_subscription(Image, "/probe/image", on_img, qos, raw=RAW)
node.create_timer(0.5, tick)
ex = MultiThreadedExecutor(2) if executor_kind.startswith("multi") else SingleThreadedExecutor()
ex.add_node(node)
try:
    ex.spin()
except Exception:
    pass
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--executor", default="multi", choices=("multi", "single", "multi-raw", "single-raw"))
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--rate", type=float, default=0.4)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--load", type=float, default=0.0, help="seconds of NumPy work per frame on a subscriber thread")
    ap.add_argument("--raw", action="store_true", help="publish pre-serialised bytes")
    ap.add_argument("--out", default="", help="arrivals log (JSON lines); default: a temporary file")
    a = ap.parse_args()
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(170, 200)))
    if not a.out:
        a.out = tempfile.mkstemp(prefix="executor_stalls_", suffix=".jsonl")[1]
    open(a.out, "w").close()
    sub = subprocess.Popen([sys.executable, "-c", SUB, a.out, a.executor, str(a.depth), str(a.load)])
    import numpy as np
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image

    rclpy.init()
    n = rclpy.create_node("probe_pub")
    pub = n.create_publisher(Image, "/probe/image", QoSProfile(depth=a.depth, reliability=ReliabilityPolicy.RELIABLE))
    while pub.get_subscription_count() < 1:
        time.sleep(0.1)
    time.sleep(1)
    frame = np.random.randint(0, 255, (3006, 4202, 3), np.uint8)
    msg = Image(height=3006, width=4202, encoding="rgb8", step=4202 * 3, data=frame.tobytes())
    raw = bytearray(serialize_message(msg))
    sent = []
    t0 = time.time()
    i = 0
    while time.time() - t0 < a.seconds:
        target = t0 + i / a.rate
        if time.time() < target:
            time.sleep(target - time.time())
        now = time.time()
        sec, nsec = int(now), int((now % 1) * 1e9)
        if a.raw:
            raw[4:8] = sec.to_bytes(4, "little", signed=True)
            raw[8:12] = nsec.to_bytes(4, "little")
            pub.publish(bytes(raw))
        else:
            msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nsec
            pub.publish(msg)
        sent.append((now, time.time() - now))
        i += 1
    time.sleep(4)
    sub.terminate()
    sub.wait()
    with open(a.out) as f:
        rows = [json.loads(x) for x in f]
    ticks = [r["t"] for r in rows if "tick" in r]
    gaps = [b - x for x, b in itertools.pairwise(ticks)]
    lat = [(r["t"] - r["stamp"]) * 1e3 for r in rows if "stamp" in r]
    pubms = [p * 1e3 for _, p in sent]
    print(
        json.dumps(
            {
                "args": vars(a),
                "sent": len(sent),
                "received": len(lat),
                "transport_ms_p50": float(np.median(lat)) if lat else None,
                "transport_ms_max": max(lat) if lat else None,
                "transport_over_1s": sum(x > 1000 for x in lat),
                "publish_call_ms_p50": float(np.median(pubms)),
                "timer_gaps_over_1s": [round(g, 2) for g in gaps if g > 1.0],
            }
        )
    )
    n.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
