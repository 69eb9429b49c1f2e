"""The ROS 2 commands of `hades-perception`: run, bag make, replay.

The core's command line (hades_perception.cli) adds these where this package is
installed, so a robot, a lab PC and a laptop share one command name.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hades_perception_ros import launching


def _bag_make(args: argparse.Namespace) -> int:
    from hades_perception_ros.bag import make_bag

    n = make_bag(
        Path(args.images),
        Path(args.out),
        topic=args.topic,
        rate_hz=args.rate,
        storage=args.storage,
        frame_id=args.frame_id,
        encoding=args.encoding,
        compressed=args.compressed,
        repeat=args.repeat,
    )
    print(f"wrote {n} frames to {args.out} ({args.storage}, {args.rate} Hz on {args.topic})")
    return 0


def _replay(args: argparse.Namespace) -> int:
    from hades_perception_ros.replay import replay, write_report

    report = replay(
        Path(args.bag),
        namespace=args.namespace,
        camera_topic=args.camera_topic,
        record=Path(args.record) if args.record else None,
        mode=args.mode,
        timeout_s=args.timeout,
        predictions=Path(args.predictions) if args.predictions else None,
        storage=args.storage,
    )
    out = Path(args.report)
    out.parent.mkdir(parents=True, exist_ok=True)
    s = write_report(report, out)
    if args.overlays and args.record:
        from hades_perception_ros.replay import overlays_from_recording

        ns = args.namespace if args.namespace.startswith("/") else f"/{args.namespace}"
        pics = overlays_from_recording(Path(args.record), Path(args.bag), Path(args.overlays), ns)
        print(f"{len(pics)} overlay pictures in {args.overlays}")
    lat = s["latency_ms"] or {}
    print(
        f"frames in {s['frames_in']}, out {s['frames_out']}, dropped {s['dropped']}; latency p50 "
        f"{lat.get('p50', float('nan')):.0f} ms, p99 {lat.get('p99', float('nan')):.0f} ms; report {out}"
    )
    return 0 if s["frames_out"] else 1


def _run(args: argparse.Namespace) -> int:
    from hades_perception_ros.launching import run

    return run(Path(args.params), args.namespace, args.camera_topic, args.remap, args.log_level, args.set)


def add_commands(sub: Any) -> None:
    """Add run, bag and replay to the `hades-perception` subcommands `sub`."""
    p = sub.add_parser("run", help="start the perception node as launch/perception.launch.py would")
    p.add_argument(
        "--params",
        default=str(launching.package_dir() / launching.DEFAULT_PARAMS),
        help="ROS 2 parameter file (default: the package's config/perception.yaml)",
    )
    p.add_argument("--namespace", default=launching.DEFAULT_NAMESPACE, help="node namespace (one per camera)")
    p.add_argument("--camera-topic", default=launching.DEFAULT_CAMERA_TOPIC, help="camera image topic")
    p.add_argument("--remap", action="append", default=[], metavar="FROM:=TO", help="extra topic remapping")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warn", "error"])
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME:=VALUE",
        help="override one parameter of the file, e.g. qos_reliability:=reliable",
    )
    p.set_defaults(func=_run)

    bag = sub.add_parser("bag", help="rosbag2 tools").add_subparsers(dest="bag_command", required=True)
    p = bag.add_parser("make", help="write a rosbag2 (mcap or sqlite3) from a folder of images")
    p.add_argument("--images", required=True, help="an image or a folder of images (sorted by name)")
    p.add_argument("--out", required=True, help="bag folder to create")
    p.add_argument("--rate", type=float, default=1.0, help="frames per second (default 1)")
    p.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap")
    p.add_argument("--topic", default=launching.DEFAULT_CAMERA_TOPIC, help="camera topic")
    p.add_argument("--frame-id", default="hades_camera")
    p.add_argument("--encoding", choices=["rgb8", "bgr8", "mono8"], default="rgb8")
    p.add_argument("--compressed", action="store_true", help="write sensor_msgs/CompressedImage (PNG) instead")
    p.add_argument("--repeat", type=int, default=1, help="play the folder this many times")
    p.set_defaults(func=_bag_make)

    p = sub.add_parser("replay", help="play a bag into a running node and record its outputs")
    p.add_argument("bag", help="bag made by `bag make` (or any bag with a camera topic)")
    p.add_argument("--namespace", default=launching.DEFAULT_NAMESPACE, help="the node's namespace")
    p.add_argument("--camera-topic", default=launching.DEFAULT_CAMERA_TOPIC)
    p.add_argument(
        "--mode",
        choices=["keep-up", "bag-rate"],
        default="keep-up",
        help="keep-up: next frame when the node has answered; bag-rate: the bag's timing",
    )
    p.add_argument("--record", default=None, help="bag folder to record the node's outputs into")
    p.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap", help="storage of the recording")
    p.add_argument(
        "--predictions",
        default=None,
        help="folder for the recorded outputs as prediction files (needs --record); score them with hades-train score",
    )
    p.add_argument("--report", default="replay.json", help="where to write the report (JSON)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for one answer")
    p.add_argument("--overlays", default=None, help="folder for pictures of the recorded outputs (needs --record)")
    p.set_defaults(func=_replay)
