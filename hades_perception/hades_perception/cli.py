"""`hades-perception`: the serving side's command line.

predict <image or folder> --model <bundle> --out DIR [--rsml] [--overlay]
    per image: DIR/<stem>_<class>_mask.png (uint8 0/255, image size), DIR/<stem>.json
    (landmarks, plants with traits, certainty) and with --rsml DIR/<stem>.rsml
Where the ROS 2 package (hades_perception_ros) is installed, it adds its commands:
run (the node, as the launch file starts it), bag make, replay.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import cv2
import numpy as np

from hades_perception.inference.engine import DEFAULT_PROVIDERS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
PROG = "hades-perception"
log = logging.getLogger(PROG)


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
    from hades_perception.inference.landmarks import PRIMARY
    from hades_perception.inference.pipeline import Pipeline
    from hades_perception.inference.prediction_files import write_prediction

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
        write_prediction(out, path.stem, pred)
        if args.rsml:
            from hades_perception.inference.rsml import write_rsml

            write_rsml(out / f"{path.stem}.rsml", pred.plants, path.stem)
        if args.overlay:
            from hades_perception.inference.overlay import prediction_picture
            from hades_perception.inference.pipeline import as_rgb8

            cv2.imwrite(str(out / f"{path.stem}_overlay.png"), prediction_picture(as_rgb8(image), pred))
        tips = sum(lm.kind == PRIMARY for lm in pred.landmarks)
        log.info(
            "%s: %d primary tips, %d landmarks, %.0f ms", path.name, tips, len(pred.landmarks), pred.timing_ms["total"]
        )
    print(f"wrote predictions for {len(files) - failed} of {len(files)} image(s) to {out}")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
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
    p.add_argument("--rsml", action="store_true", help="also write <stem>.rsml: each plant's roots as polylines")
    p.set_defaults(func=_predict)

    try:  # run, bag and replay need ROS 2: present where the ROS package is installed
        from hades_perception_ros.cli import add_commands
    except ImportError as exc:
        log.debug("ROS commands not available: %s", exc)
    else:
        add_commands(sub)
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
