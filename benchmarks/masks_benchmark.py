"""The node's images thread alone: a frame's full-size masks message (a mono8 mask per
class and the confidence image, 63 MB at 4202x3006) built and published by the node's
own code (`FrameImages`, `Outputs.publish_masks`) to a subscriber in another process,
over the DDS set-up of scripts/env.sh. The engine runs once per frame before the timing,
so its noise stays out; the frames are spaced a second apart, as a node's are. Written
as JSON; not a test.

    source scripts/env.sh
    ROS_DOMAIN_ID=79 python benchmarks/masks_benchmark.py --out benchmarks/results/masks_cpu_2core.json

Per frame: wall time of the build and publish (`images_ms`, what the node reports as
`images_p50_ms`) and this process's CPU time over it (`cpu_ms`, DDS threads included).
Frames: full-size synthetic plates of both presets (postprocess_benchmark.py's).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TOPIC = "masks"


def subscriber() -> None:
    """The other process: takes every masks message (deserialised in Python, as a
    Python consumer's would be) and drops it."""
    import rclpy
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from hades_perception_msgs.msg import SegmentationMasks

    rclpy.init()
    node = Node("masks_benchmark_subscriber")
    node.create_subscription(
        SegmentationMasks, TOPIC, lambda m: None, QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
    )
    rclpy.spin(node)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models" / "hades-seedlings"))
    ap.add_argument("--frames", type=int, default=3, help="plates of each preset")
    ap.add_argument("--repeats", type=int, default=4, help="times each frame's images are built and published")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--subscriber", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.subscriber:
        subscriber()
        return 0

    import rclpy
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import Header

    from hades_perception.inference.loading import load_pipeline
    from hades_perception_ros.messages import FrameImages, Outputs

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from postprocess_benchmark import make_frames, provenance

    pipe = load_pipeline(Path(args.model), providers=("CPUExecutionProvider",))
    started = [(name, pipe.start(image)) for name, image in make_frames(args.frames)]
    rclpy.init()
    node = Node("masks_benchmark")
    outputs = Outputs(node, "", QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
    sub = subprocess.Popen([sys.executable, __file__, "--subscriber"], env=os.environ.copy())
    try:
        while not outputs.masks_wanted():
            rclpy.spin_once(node, timeout_sec=0.1)
        time.sleep(1.0)
        per_frame: dict[str, dict[str, list[float]]] = {}
        for _ in range(args.repeats):
            for name, inferred in started:
                pred = pipe.finish(inferred)
                header = Header(frame_id=name)
                c0, t0 = time.process_time(), time.perf_counter()
                outputs.publish_masks(header, pred, pipe.manifest.version, FrameImages(header, pred))
                wall, cpu = (time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3
                runs = per_frame.setdefault(name, {"images_ms": [], "cpu_ms": []})
                runs["images_ms"].append(wall)
                runs["cpu_ms"].append(cpu)
                del pred
                time.sleep(1.0)
    finally:
        sub.terminate()
        sub.wait(10)
        node.destroy_node()
        rclpy.shutdown()
    # The first build of each frame pays the process's first-touch page faults; the
    # medians are over every run after the first round.
    later = [r for runs in per_frame.values() for r in zip(runs["images_ms"][1:], runs["cpu_ms"][1:], strict=True)]
    result = {
        **provenance(pipe, len(started), args.repeats),
        "images_ms_median": float(np.median([w for w, _ in later])),
        "cpu_ms_median": float(np.median([c for _, c in later])),
        "per_frame": per_frame,
    }
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "per_frame"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
