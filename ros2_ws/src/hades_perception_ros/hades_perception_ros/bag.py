"""Writing rosbag2 files from image folders, and reading their frames back.

Pure Python (rosbags): bags made here play with `ros2 bag play` on a robot.
Besides the camera topic, a bag made from a dataset carries the source file stem
of every frame on `<camera topic>/source` (std_msgs/String, same timestamp), so
a replay can score outputs against the dataset's ground truth.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from hades_perception.inference.plants import Plant
from hades_perception.inference.prediction import Landmark, Prediction

IMAGE_T, COMPRESSED_T, STRING_T = "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage", "std_msgs/msg/String"
SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
TYPESTORE = get_typestore(Stores.ROS2_JAZZY)  # message definitions unchanged in Kilted
# The project's types a replay records; an install without one was built from older .msg files.
PROJECT_TYPES = tuple(
    f"hades_perception_msgs/msg/{t}"
    for t in ("SegmentationMasks", "LandmarkArray", "Certainty", "PlantArray", "Monitoring", "ModelInfo", "Agreement")
)


@dataclass(frozen=True)
class BagFrame:
    stamp_ns: int  # header stamp
    topic: str
    msgtype: str
    raw: bytes  # CDR, ready to publish as is
    source: str | None  # dataset stem, when the bag carries one


def register_project_types() -> None:
    """Teach the typestore hades_perception_msgs, from the installed .msg files (every
    one in the first share/hades_perception_msgs/msg on AMENT_PREFIX_PATH)."""
    if all(t in TYPESTORE.types for t in PROJECT_TYPES):
        return
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        folder = Path(prefix) / "share" / "hades_perception_msgs" / "msg"
        if folder.is_dir():
            types = {}
            for f in sorted(folder.glob("*.msg")):
                types.update(get_types_from_msg(f.read_text(), f"hades_perception_msgs/msg/{f.stem}"))
            TYPESTORE.register(types)
            missing = [t for t in PROJECT_TYPES if t not in TYPESTORE.types]
            if missing:
                raise RuntimeError(
                    f"{folder} lacks {', '.join(missing)}: the workspace was built from older "
                    "message files; rebuild it (bash scripts/setup.sh)"
                )
            return
    raise RuntimeError(
        "hades_perception_msgs is not on AMENT_PREFIX_PATH: source scripts/env.sh "
        "(or the workspace's install/setup.bash)"
    )


def _stamp(ns: int) -> Any:
    Time = TYPESTORE.types["builtin_interfaces/msg/Time"]  # noqa: N806
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def make_bag(
    images: Path,
    out: Path,
    *,
    topic: str = "/hades/camera/image_raw",
    rate_hz: float = 1.0,
    storage: str = "mcap",
    frame_id: str = "hades_camera",
    encoding: str = "rgb8",
    compressed: bool = False,
    start_ns: int = 1_700_000_000_000_000_000,
    repeat: int = 1,
) -> int:
    """Write every image of a folder (sorted) as one frame, `repeat` times; returns frames written."""
    files = (
        sorted(p for p in Path(images).iterdir() if p.suffix.lower() in SUFFIXES)
        if Path(images).is_dir()
        else [Path(images)]
    )
    if not files:
        raise ValueError(f"{images}: no images ({', '.join(SUFFIXES)})")
    if rate_hz <= 0:
        raise ValueError(f"rate must be positive, got {rate_hz}")
    if encoding not in ("rgb8", "bgr8", "mono8"):
        raise ValueError(f"encoding must be rgb8, bgr8 or mono8, got {encoding!r}")
    plugin = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}.get(storage)
    if plugin is None:
        raise ValueError(f"storage must be mcap or sqlite3, got {storage!r}")
    if out.exists():
        raise FileExistsError(f"{out} exists; bags are not overwritten")
    Header = TYPESTORE.types["std_msgs/msg/Header"]  # noqa: N806
    Image = TYPESTORE.types[IMAGE_T]  # noqa: N806
    Compressed = TYPESTORE.types[COMPRESSED_T]  # noqa: N806
    String = TYPESTORE.types[STRING_T]  # noqa: N806
    period = int(1e9 / rate_hz)
    n = 0
    with Writer(out, version=8, storage_plugin=plugin) as writer:
        cam = writer.add_connection(topic, COMPRESSED_T if compressed else IMAGE_T, typestore=TYPESTORE)
        src = writer.add_connection(f"{topic}/source", STRING_T, typestore=TYPESTORE)
        for r in range(repeat):
            for path in files:
                t = start_ns + n * period
                header = Header(stamp=_stamp(t), frame_id=frame_id)
                bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if bgr is None:
                    raise ValueError(f"{path}: cannot be decoded as an image")
                if compressed:
                    _ok, png = cv2.imencode(".png", bgr)
                    msg = Compressed(header=header, format="png", data=np.frombuffer(png.tobytes(), np.uint8))
                else:
                    pix = {
                        "rgb8": lambda b: cv2.cvtColor(b, cv2.COLOR_BGR2RGB),
                        "bgr8": lambda b: b,
                        "mono8": lambda b: cv2.cvtColor(b, cv2.COLOR_BGR2GRAY),
                    }[encoding](bgr)
                    h, w = pix.shape[:2]
                    msg = Image(
                        header=header,
                        height=h,
                        width=w,
                        encoding=encoding,
                        is_bigendian=0,
                        step=w * (1 if pix.ndim == 2 else 3),
                        data=np.ascontiguousarray(pix).reshape(-1),
                    )
                writer.write(cam, t, TYPESTORE.serialize_cdr(msg, cam.msgtype))
                writer.write(src, t, TYPESTORE.serialize_cdr(String(data=path.stem), STRING_T))
                n += 1
            del r
    return n


def read_frames(bag: Path, topic: str | None = None) -> Iterator[BagFrame]:
    """Camera frames (Image or CompressedImage) in bag order, with their source stems."""
    with Reader(bag) as reader:
        cams = [
            c
            for c in reader.connections
            if c.msgtype in (IMAGE_T, COMPRESSED_T) and (topic is None or c.topic == topic)
        ]
        if not cams:
            raise ValueError(
                f"{bag}: no sensor_msgs Image or CompressedImage topic" + (f" named {topic}" if topic else "")
            )
        cam_topics = {c.topic for c in cams}
        sources = [c for c in reader.connections if c.msgtype == STRING_T and c.topic.endswith("/source")]
        stems: dict[int, str] = {}
        for conn, t, raw in reader.messages(connections=sources):
            del conn
            msg: Any = TYPESTORE.deserialize_cdr(raw, STRING_T)
            stems[t] = msg.data
        for conn, t, raw in reader.messages(connections=cams):
            if conn.topic in cam_topics:
                yield BagFrame(t, conn.topic, conn.msgtype, bytes(raw), stems.get(t))


class BagRecorder:
    """Writes raw CDR messages of several topics to a new bag as they arrive."""

    def __init__(self, out: Path, topics: dict[str, str], storage: str = "mcap") -> None:
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self.writer = Writer(out, version=8, storage_plugin=plugin)
        self.writer.open()
        self.connections = {
            t: self.writer.add_connection(t, msgtype, typestore=TYPESTORE) for t, msgtype in topics.items()
        }
        self.count = dict.fromkeys(topics, 0)

    def write(self, topic: str, t_ns: int, raw: bytes) -> None:
        self.writer.write(self.connections[topic], t_ns, raw)
        self.count[topic] += 1

    def close(self) -> None:
        self.writer.close()


def plant_from_msg(msg: Any) -> Plant:
    """A hades_perception_msgs/Plant (rclpy's or rosbags') as the core's Plant, without
    the paths and lateral tips, which the message does not carry."""
    return Plant(
        int(msg.plant),
        float(msg.confidence),
        bool(msg.low_confidence),
        base=(float(msg.base_x), float(msg.base_y)) if msg.has_base else None,
        primary_root_tip=(float(msg.primary_root_tip_x), float(msg.primary_root_tip_y))
        if msg.has_primary_root_tip
        else None,
        primary_root_length_px=float(msg.primary_root_length_px) if msg.has_primary_root_length else None,
        primary_root_length_mm=float(msg.primary_root_length_mm) if msg.calibrated else None,
        total_root_length_px=float(msg.total_root_length_px),
        lateral_root_count=int(msg.lateral_root_count),
        shoot_area_px=float(msg.shoot_area_px),
        reason=str(msg.reason),
    )


def _plants(plants: Any, cert: Any) -> list[Plant]:
    """From the plants message; from a recording without one, the per-plant
    confidence and flags of `certainty` alone."""
    if plants is not None:
        return [plant_from_msg(p) for p in plants.plants]
    if cert is None:
        return []
    return [
        Plant(i, float(c), bool(low))
        for i, (c, low) in enumerate(zip(cert.plant_confidence, cert.plant_low_confidence, strict=True))
    ]


def read_predictions(recording: Path, ns: str) -> dict[int, Prediction]:
    """A node's recorded outputs (`replay --record`), rebuilt as Predictions keyed by
    the header stamp of the frame they answer: masks and confidence from `masks`,
    landmarks from `landmarks`, per-class confidence and threshold from `certainty`,
    plants and their traits from `plants` (from `certainty`'s per-plant confidence
    in a recording made before the plants topic), monitoring signals from `monitoring`."""
    register_project_types()
    topics = {
        f"{ns}/masks": "masks",
        f"{ns}/landmarks": "landmarks",
        f"{ns}/certainty": "certainty",
        f"{ns}/plants": "plants",
        f"{ns}/monitoring": "monitoring",
    }
    got: dict[str, dict[int, Any]] = {name: {} for name in topics.values()}
    with Reader(recording) as reader:
        for conn, _, raw in reader.messages(connections=[c for c in reader.connections if c.topic in topics]):
            msg: Any = TYPESTORE.deserialize_cdr(raw, conn.msgtype)
            got[topics[conn.topic]][msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec] = msg
    out = {}
    for stamp, m in got["masks"].items():
        if stamp not in got["landmarks"]:
            continue
        h, w = m.masks[0].height, m.masks[0].width
        classes = tuple(m.class_names)
        cert = got["certainty"].get(stamp)
        out[stamp] = Prediction(
            w,
            h,
            classes,
            {c: np.asarray(img.data).reshape(h, w) > 0 for c, img in zip(classes, m.masks, strict=True)},
            np.asarray(m.confidence.data).reshape(m.confidence.height, m.confidence.width),
            [
                Landmark(
                    lm.kind, None if lm.plant < 0 else int(lm.plant), float(lm.x), float(lm.y), float(lm.confidence)
                )
                for lm in got["landmarks"][stamp].landmarks
            ],
            dict(zip(cert.class_names, cert.class_confidence, strict=True)) if cert else {},
            _plants(got["plants"].get(stamp), cert),
            float(cert.low_confidence_threshold) if cert else 0.5,
            {"version": m.model_version},
            None,
            None,
        )
        if stamp in got["monitoring"]:
            mon = got["monitoring"][stamp]
            out[stamp].signals = {str(k): float(v) for k, v in zip(mon.names, mon.values, strict=True)}
    return out


def read_monitoring(recording: Path, ns: str | None = None) -> list[dict[str, float]]:
    """The per-frame monitoring signals a recording holds (`<ns>/monitoring`, or every
    topic ending in /monitoring of the Monitoring type when ns is None), in bag order."""
    register_project_types()
    msgtype = "hades_perception_msgs/msg/Monitoring"
    out = []
    with Reader(recording) as reader:
        conns = [
            c
            for c in reader.connections
            if c.msgtype == msgtype and (c.topic == f"{ns}/monitoring" if ns else c.topic.endswith("/monitoring"))
        ]
        for conn, _, raw in reader.messages(connections=conns):
            msg: Any = TYPESTORE.deserialize_cdr(raw, conn.msgtype)
            out.append({str(k): float(v) for k, v in zip(msg.names, msg.values, strict=True)})
    return out
