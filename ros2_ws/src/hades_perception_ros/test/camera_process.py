"""A camera that appears after the node: a process of its own that creates a publisher
(reliable, as the node's default asks), waits until the node's subscription matches,
sends its first full-size frame at once, and each next frame when the node answered the
last. Prints {"sent": [...], "answered": [...]} (header stamps, s) as JSON.

Run by test_full_frames.py; usable by hand:
  python camera_process.py --camera /ns/camera/image_raw --answers /ns/certainty --frames 3
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--camera", required=True)
    ap.add_argument("--answers", required=True, help="the node's certainty topic")
    ap.add_argument("--frames", type=int, default=2)
    ap.add_argument("--width", type=int, default=4202)
    ap.add_argument("--height", type=int, default=3006)
    ap.add_argument("--reliability", default="reliable", choices=["reliable", "best_effort"])
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for each answer")
    a = ap.parse_args()

    import numpy as np
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from hades_perception_msgs.msg import Certainty

    rng = np.random.default_rng(0)
    frame = Image(height=a.height, width=a.width, encoding="rgb8", step=3 * a.width)
    frame.data = rng.integers(90, 160, (a.height, a.width, 3), np.uint8).tobytes()  # agar-grey noise, 36 MB
    rclpy.init()
    node = rclpy.create_node("late_camera")
    answered: list[int] = []
    node.create_subscription(Certainty, a.answers, lambda m: answered.append(m.header.stamp.sec), QoSProfile(depth=10))
    reliability = ReliabilityPolicy.RELIABLE if a.reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
    pub = node.create_publisher(Image, a.camera, QoSProfile(depth=1, reliability=reliability))
    deadline = time.monotonic() + 30
    while (pub.get_subscription_count() < 1 or node.count_publishers(a.answers) < 1) and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.01)
    sent = []
    for i in range(a.frames):
        frame.header.stamp.sec = 100 + i
        pub.publish(frame)  # the first one right after the match
        sent.append(100 + i)
        until = time.monotonic() + a.timeout
        while 100 + i not in answered and time.monotonic() < until:
            rclpy.spin_once(node, timeout_sec=0.05)
    print(json.dumps({"sent": sent, "answered": sorted(set(answered))}), flush=True)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
