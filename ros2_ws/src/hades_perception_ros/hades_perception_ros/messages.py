"""Prediction -> ROS messages, and the publishers of one model's results.

Every output carries the input frame's header and the model version. What a robot
acts on (landmarks, certainty, plants: small) goes out first; the masks message (five
full-size images, 63 MB at 4202x3006) and the viewing images are built only while
someone subscribes, like image_transport's lazy publishers.
"""

from __future__ import annotations

import array
import time
from collections.abc import Callable, Mapping

import cv2
import numpy as np
from builtin_interfaces.msg import Time
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from hades_perception.inference.full_resolution import FullResolutionMasks, as_mono8
from hades_perception.inference.overlay import class_colour
from hades_perception.inference.pipeline import Pipeline
from hades_perception.inference.plants import Plant as FoundPlant
from hades_perception.inference.prediction import Prediction
from hades_perception_msgs.msg import (
    Certainty,
    Landmark,
    LandmarkArray,
    ModelInfo,
    Monitoring,
    Plant,
    PlantArray,
    SegmentationMasks,
)

# model_info: a late subscriber gets the last one.
LATCHED = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL, reliability=ReliabilityPolicy.RELIABLE)


def mono8(header: Header, height: int, width: int, fill: Callable[[np.ndarray], object]) -> Image:
    """A mono8 image whose pixels `fill` writes into the message's own buffer (an (H, W)
    uint8 view of it): a full frame's 12.6 MB are written once, not made as an array,
    copied to bytes and copied again into the message (rclpy keeps an array.array as
    it is; 3 copies fewer per image)."""
    data = array.array("B", [0]) * (height * width)
    fill(np.frombuffer(data, np.uint8).reshape(height, width))
    return Image(header=header, height=height, width=width, encoding="mono8", step=width, data=data)


def colour_image(header: Header, masks: Mapping[str, np.ndarray], shape: tuple[int, int]) -> Image:
    """Every class in its colour (rgb8), for viewing; where classes overlap, the later
    class's colour. `masks`: class -> (H, W) bool, `shape`: (H, W). Up to 8 classes: each
    pixel's set of classes as bits of one byte (OpenCV's masked OR sets a class's bit in
    place: 7 against 35 ms on a full frame for NumPy's shift-and-OR, 2 cores), then a
    palette lookup per channel (several times faster on a full frame than painting each
    class's mask)."""
    classes = list(masks)
    h, w = shape
    if not classes or len(classes) > 8:  # no class, or too many for one byte of codes: paint
        rgb = np.zeros((h, w, 3), np.uint8)
        for i, c in enumerate(classes):
            rgb[np.asarray(masks[c], bool)] = class_colour(c, i)
        return Image(header=header, height=h, width=w, encoding="rgb8", step=3 * w, data=rgb.tobytes())
    bits = np.zeros((h, w), np.uint8)
    for i, c in enumerate(classes):
        # A scalar operand, as OpenCV documents; its stubs type arrays only.
        cv2.bitwise_or(bits, 1 << i, dst=bits, mask=masks[c].view(np.uint8))  # type: ignore[call-overload]
    palette = np.zeros((256, 3), np.uint8)
    for code in range(1, 1 << len(classes)):
        top = code.bit_length() - 1  # the latest class present wins
        palette[code] = class_colour(classes[top], top)
    coloured = cv2.merge([cv2.LUT(bits, np.ascontiguousarray(palette[:, k])) for k in range(3)])
    return Image(header=header, height=h, width=w, encoding="rgb8", step=3 * w, data=coloured.tobytes())


def downsampled(image: np.ndarray, k: int, *, any_of: bool) -> np.ndarray:
    """`image` (H, W; bool or uint8) at 1/k of its size each way, over whole k x k blocks
    (the last H % k rows and W % k columns are left out). any_of: a mask (bool, or uint8
    255 where set), true where any pixel of the block is (a root one pixel wide stays in
    view); else the block's mean.
    OpenCV's area resize at a whole factor: about 3 ms for a full frame's mask, 2 cores."""
    h, w = image.shape[0] // k, image.shape[1] // k
    block = image[: h * k, : w * k]
    if any_of:
        return cv2.resize(as_mono8(block), (w, h), interpolation=cv2.INTER_AREA) > 0
    return cv2.resize(block, (w, h), interpolation=cv2.INTER_AREA)


def plant_msg(p: FoundPlant) -> Plant:
    """One plant's traits; a position or length the core has not found is flagged
    absent (has_*, calibrated false) and left 0."""
    return Plant(
        plant=int(p.plant),
        has_base=p.base is not None,
        base_x=float(p.base[0]) if p.base is not None else 0.0,
        base_y=float(p.base[1]) if p.base is not None else 0.0,
        has_primary_root_tip=p.primary_root_tip is not None,
        primary_root_tip_x=float(p.primary_root_tip[0]) if p.primary_root_tip is not None else 0.0,
        primary_root_tip_y=float(p.primary_root_tip[1]) if p.primary_root_tip is not None else 0.0,
        has_primary_root_length=p.primary_root_length_px is not None,
        primary_root_length_px=float(p.primary_root_length_px or 0.0),
        calibrated=p.primary_root_length_mm is not None,
        primary_root_length_mm=float(p.primary_root_length_mm or 0.0),
        total_root_length_px=float(p.total_root_length_px),
        lateral_root_count=int(p.lateral_root_count),
        shoot_area_px=float(p.shoot_area_px),
        confidence=float(p.confidence),
        low_confidence=bool(p.low_confidence),
        reason=p.reason,
    )


def model_info(pipeline: Pipeline, loaded_at: float, stamp: Time, store: str, channel: str, pinned: str) -> ModelInfo:
    m = pipeline.manifest
    info = ModelInfo(
        name=m.name,
        version=m.version,
        sha256=m.sha256,
        engine=pipeline.engine.name,
        class_names=list(m.outputs.classes),
        landmark_kinds=list(m.outputs.landmark_kinds),
        loaded_at=Time(sec=int(loaded_at), nanosec=int((loaded_at % 1) * 1e9)),
        store=store,
        channel=channel,
        pinned=pinned,
    )
    info.header.stamp = stamp
    return info


class FrameImages:
    """One frame's images, each built at most once however many topics carry it: the
    masks message's mono8 images (a mask per class, the confidence map; a full-size one
    is 12.6 MB, written straight into its message's buffer), and the viewing images, the
    same ones at `downsample` 1, else at 1/k of the frame's size each way
    (viewing_downsample), made from the full-size ones."""

    def __init__(self, header: Header, pred: Prediction, downsample: int = 1) -> None:
        self.header, self.pred, self.k = header, pred, max(1, int(downsample))
        self._built: dict[tuple[str, ...], Image] = {}
        self._small: dict[str, np.ndarray] = {}

    def mask(self, cls: str) -> Image:
        masks = self.pred.masks
        if isinstance(masks, FullResolutionMasks):  # thresholded straight into the buffer
            return self._once(("mask", cls), lambda out: masks.mono8(cls, out))
        return self._once(("mask", cls), lambda out: as_mono8(masks[cls], out))

    def confidence(self) -> Image:
        return self._once(("confidence",), self.pred.confidence_into)

    def view_mask(self, cls: str) -> Image:
        if self.k == 1:
            return self.mask(cls)
        return self._once(("view", cls), lambda out: as_mono8(self._small_mask(cls), out), self.k)

    def view_confidence(self) -> Image:
        if self.k == 1:
            return self.confidence()
        return self._once(("view", "confidence"), self._small_confidence, self.k)

    def view_colour(self) -> Image:
        if self.k == 1:
            full = {c: self._pixels(self.mask(c)) for c in self.pred.classes}
            return colour_image(self.header, full, (self.pred.height, self.pred.width))
        small = {c: self._small_mask(c) for c in self.pred.classes}
        shape = (self.pred.height // self.k, self.pred.width // self.k)
        return colour_image(self.header, small, shape)

    def _small_confidence(self, out: np.ndarray) -> None:
        np.copyto(out, downsampled(self._pixels(self.confidence()), self.k, any_of=False))

    def _small_mask(self, cls: str) -> np.ndarray:
        if cls not in self._small:
            self._small[cls] = downsampled(self._pixels(self.mask(cls)), self.k, any_of=True)
        return self._small[cls]

    def _once(self, key: tuple[str, ...], fill: Callable[[np.ndarray], object], k: int = 1) -> Image:
        if key not in self._built:
            self._built[key] = mono8(self.header, self.pred.height // k, self.pred.width // k, fill)
        return self._built[key]

    @staticmethod
    def _pixels(image: Image) -> np.ndarray:
        """A mono8 image's pixels, (H, W) uint8, without a copy."""
        return np.frombuffer(image.data, np.uint8).reshape(image.height, image.width)


class Outputs:
    """The result topics of one model (serving, or the shadow candidate)."""

    def __init__(self, node: Node, prefix: str, qos: QoSProfile) -> None:
        self.node = node
        self.masks = node.create_publisher(SegmentationMasks, prefix + "masks", qos)
        self.landmarks = node.create_publisher(LandmarkArray, prefix + "landmarks", qos)
        self.certainty = node.create_publisher(Certainty, prefix + "certainty", qos)
        self.plants = node.create_publisher(PlantArray, prefix + "plants", qos)
        self.monitoring = node.create_publisher(Monitoring, prefix + "monitoring", qos)

    def publish(
        self,
        header: Header,
        pred: Prediction,
        name: str,
        version: str,
        drift: tuple[int, str] = (0, ""),
    ) -> None:
        """What a robot acts on: landmarks, certainty, plants, monitoring (small; `drift`:
        the node's latest drift level (0-2) and message, carried on monitoring). The masks
        go out separately (`publish_masks`), so a caller can send them from another thread."""
        self.landmarks.publish(
            LandmarkArray(
                header=header,
                model_version=version,
                landmarks=[
                    Landmark(
                        kind=lm.kind,
                        plant=-1 if lm.plant is None else lm.plant,
                        x=float(lm.x),
                        y=float(lm.y),
                        calibrated=lm.x_mm is not None,
                        x_mm=float(lm.x_mm or 0.0),
                        y_mm=float(lm.y_mm or 0.0),
                        confidence=float(lm.confidence),
                    )
                    for lm in pred.landmarks
                ],
            )
        )
        self.certainty.publish(
            Certainty(
                header=header,
                model_name=name,
                model_version=version,
                class_names=list(pred.class_confidence),
                class_confidence=[float(v) for v in pred.class_confidence.values()],
                plant_confidence=[float(p.confidence) for p in pred.plants],
                plant_low_confidence=[bool(p.low_confidence) for p in pred.plants],
                low_confidence_threshold=float(pred.low_confidence_threshold),
                low_confidence=any(p.low_confidence for p in pred.plants),
            )
        )
        self.plants.publish(
            PlantArray(header=header, model_version=version, plants=[plant_msg(p) for p in pred.plants])
        )
        self.monitoring.publish(
            Monitoring(
                header=header,
                model_name=name,
                model_version=version,
                names=list(pred.signals),
                values=[float(v) for v in pred.signals.values()],
                drift_level=drift[0],
                drift_message=drift[1],
            )
        )

    def masks_wanted(self) -> bool:
        return bool(self.masks.get_subscription_count())

    def publish_masks(self, header: Header, pred: Prediction, version: str, images: FrameImages | None = None) -> None:
        """The masks message (63 MB at 4202x3006), built only while someone subscribes."""
        if not self.masks_wanted():
            return
        images = images or FrameImages(header, pred)
        self.masks.publish(
            SegmentationMasks(
                header=header,
                model_version=version,
                class_names=list(pred.classes),
                masks=[images.mask(c) for c in pred.classes],
                confidence=images.confidence(),
            )
        )

    def destroy(self) -> None:
        for pub in (self.masks, self.landmarks, self.certainty, self.plants, self.monitoring):
            self.node.destroy_publisher(pub)


class RateLimit:
    """At most `rate_hz` events a second (0: no limit): `due(now)` says whether an event
    at monotonic time `now` may happen, and counts it when it may."""

    def __init__(self, rate_hz: float) -> None:
        self.period = 1.0 / rate_hz if rate_hz > 0 else 0.0
        self.last = -float("inf")

    def due(self, now: float) -> bool:
        if now - self.last < self.period:
            return False
        self.last = now
        return True


class ViewingOutputs:
    """masks/<class> and confidence (mono8), masks/colour (rgb8): filled only while
    someone looks, and at most `rate_hz` frames a second (0: every frame): a person
    watching in rviz or Foxglove needs no 12-megapixel image per frame, and each costs the
    images thread tens of milliseconds. Publishers per class are added on the executor
    (`add_classes`) when a new version brings a class; a frame publishes only the
    classes that have one."""

    def __init__(
        self, node: Node, qos: QoSProfile, confidence: bool, colour: bool, rate_hz: float = 0.0, downsample: int = 1
    ) -> None:
        self.node, self.qos = node, qos
        self.rate = RateLimit(rate_hz)
        self.downsample = downsample  # FrameImages makes them at 1/downsample of the frame's size
        self.confidence = node.create_publisher(Image, "confidence", qos) if confidence else None
        self.colour = node.create_publisher(Image, "masks/colour", qos) if colour else None
        self.per_class: dict[str, Publisher] = {}

    def add_classes(self, classes: tuple[str, ...]) -> None:
        """On the executor thread only: the images thread reads a copy of the table."""
        new = {c: self.node.create_publisher(Image, f"masks/{c}", self.qos) for c in classes if c not in self.per_class}
        if new:
            self.per_class = {**self.per_class, **new}

    def watched(self) -> bool:
        """Whether anyone subscribes to a viewing image."""
        pubs = [p for p in (self.confidence, self.colour, *self.per_class.values()) if p is not None]
        return any(p.get_subscription_count() for p in pubs)

    def due(self) -> bool:
        """Whether a frame's viewing images are to be published now: someone watches and
        the rate allows one (then counted). Asked on the images thread only."""
        return self.watched() and self.rate.due(time.monotonic())

    def publish(self, header: Header, pred: Prediction, images: FrameImages) -> None:
        """The images of a frame that `due` let through, to those who subscribe."""
        if self.confidence is not None and self.confidence.get_subscription_count():
            self.confidence.publish(images.view_confidence())
        table = self.per_class  # one read: add_classes replaces the table, never edits it
        for c in pred.classes:
            pub = table.get(c)
            if pub is not None and pub.get_subscription_count():
                pub.publish(images.view_mask(c))
        if self.colour is not None and self.colour.get_subscription_count():
            self.colour.publish(images.view_colour())

    def destroy(self) -> None:
        for pub in [self.confidence, self.colour, *self.per_class.values()]:
            if pub is not None:
                self.node.destroy_publisher(pub)
