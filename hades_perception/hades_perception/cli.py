"""`hades-perception`: the node side's command line.

predict <image or folder> --model <bundle> --out DIR
    per image: DIR/<stem>_<class>_mask.png (uint8 0/255, image size) and DIR/<stem>.json
run --params config/perception.yaml [--namespace hades] [--camera-topic TOPIC]
    the ROS 2 node, started as launch/perception.launch.py starts it
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import cv2
import numpy as np

from hades_perception.engine import DEFAULT_PROVIDERS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
log = logging.getLogger("hades-perception")


def read_image(path: Path) -> np.ndarray:
    """RGB (or grey) array as stored: 8- or 16-bit."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"{path}: cannot be decoded as an image")
    if img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    elif img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img


def _predict(args: argparse.Namespace) -> int:
    from hades_perception.pipeline import Pipeline

    src = Path(args.input)
    if src.is_dir():
        files = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    elif src.is_file():
        files = [src]
    else:
        raise FileNotFoundError(f"{src}: no such image or folder")
    if not files:
        raise ValueError(f"{src}: no images ({', '.join(IMAGE_SUFFIXES)})")
    pipe = Pipeline.from_bundle(args.model, providers=tuple(args.providers.split(",")), px_per_mm=args.px_per_mm)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in files:
        try:
            image = read_image(path)
            pred = pipe(image)
        except ValueError as exc:
            log.error("%s: %s", path, exc)
            failed += 1
            continue
        for cls, mask in pred.masks.items():
            cv2.imwrite(str(out / f"{path.stem}_{cls}_mask.png"), mask.astype(np.uint8) * 255)
        (out / f"{path.stem}.json").write_text(json.dumps(pred.to_json(), indent=1))
        if args.overlay:
            from hades_perception.overlay import prediction_picture
            from hades_perception.pipeline import as_rgb8

            cv2.imwrite(str(out / f"{path.stem}_overlay.png"), prediction_picture(as_rgb8(image), pred))
        tips = sum(lm.kind == "primary_root_tip" for lm in pred.landmarks)
        log.info(
            "%s: %d primary tips, %d landmarks, %.0f ms", path.name, tips, len(pred.landmarks), pred.timing_ms["total"]
        )
    print(f"wrote predictions for {len(files) - failed} of {len(files)} image(s) to {out}")
    return 1 if failed else 0


def _bag_make(args: argparse.Namespace) -> int:
    from hades_perception.bag import make_bag

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
    from hades_perception.replay import replay, write_report

    report = replay(
        Path(args.bag),
        namespace=args.namespace,
        camera_topic=args.camera_topic,
        record=Path(args.record) if args.record else None,
        mode=args.mode,
        timeout_s=args.timeout,
        truth=Path(args.truth) if args.truth else None,
        storage=args.storage,
    )
    out = Path(args.report)
    out.parent.mkdir(parents=True, exist_ok=True)
    s = write_report(report, out)
    if args.overlays and args.record:
        from hades_perception.replay import overlays_from_recording

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
    from hades_perception.launching import run

    return run(Path(args.params), args.namespace, args.camera_topic, args.remap, args.log_level, args.set)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hades-perception", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("predict", help="run a model bundle on image files")
    p.add_argument("input", help="an image file or a folder of images")
    p.add_argument("--model", required=True, help="model bundle folder (manifest.json, model.onnx)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--providers",
        default=",".join(DEFAULT_PROVIDERS),
        help="ONNX Runtime execution providers by preference (default: TensorRT, CUDA, CPU)",
    )
    p.add_argument(
        "--px-per-mm", type=float, default=None, help="calibration; default: measured from the dish (120 mm agar width)"
    )
    p.add_argument(
        "--overlay",
        action="store_true",
        help="also write <stem>_overlay.png: masks and landmarks beside the certainty map",
    )
    p.set_defaults(func=_predict)

    from hades_perception import launching

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
    p.add_argument("--truth", default=None, help="dataset folder the bag was made from, for accuracy")
    p.add_argument("--report", default="replay.json", help="where to write the report (JSON)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for one answer")
    p.add_argument("--overlays", default=None, help="folder for pictures of the recorded outputs (needs --record)")
    p.set_defaults(func=_replay)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.func(args))
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as exc:
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
