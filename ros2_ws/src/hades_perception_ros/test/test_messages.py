"""The interface package builds, imports, and its messages cross DDS between two
real processes (loopback only, this run's own domain)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from hades_perception_ros.launching import stop

pytestmark = pytest.mark.ros


def test_landmark_array_round_trips_through_cdr_serialisation():
    from rclpy.serialization import deserialize_message, serialize_message

    from hades_perception_msgs.msg import Landmark, LandmarkArray

    msg = LandmarkArray(model_version="2026.11.21-1")
    msg.header.frame_id = "hades_camera"
    msg.landmarks = [
        Landmark(
            kind="primary_root_tip",
            plant=2,
            x=1500.5,
            y=1400.25,
            calibrated=True,
            x_mm=30.1,
            y_mm=55.0,
            confidence=0.93,
        )
    ]
    back = deserialize_message(serialize_message(msg), LandmarkArray)
    assert back.header.frame_id == "hades_camera"
    assert back.landmarks[0].kind == "primary_root_tip" and back.landmarks[0].plant == 2
    assert back.landmarks[0].x == pytest.approx(1500.5)


# Stopped with SIGTERM, which rclpy turns into a context shutdown: the process then
# destroys its participant, and Fast DDS removes its shared-memory segment (a killed
# process leaves 256 MB of it in /dev/shm with this project's profile).
PUBLISHER = textwrap.dedent("""
    import time, rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.qos import QoSProfile, DurabilityPolicy
    from hades_perception_msgs.msg import ModelInfo
    rclpy.init()
    node = rclpy.create_node("model_info_publisher")
    qos = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    pub = node.create_publisher(ModelInfo, "/test/model_info", qos)
    pub.publish(ModelInfo(name="hades", version="v7", class_names=["root", "shoot"]))
    deadline = time.time() + 30
    try:
        while time.time() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
    except ExternalShutdownException:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
""")


def test_latched_model_info_reaches_a_late_subscriber_in_another_process():
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    pub = subprocess.Popen([sys.executable, "-c", PUBLISHER], env=env)
    try:
        import rclpy
        from rclpy.qos import DurabilityPolicy, QoSProfile

        from hades_perception_msgs.msg import ModelInfo

        rclpy.init()
        try:
            node = rclpy.create_node("model_info_listener")
            got: list[ModelInfo] = []
            qos = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
            node.create_subscription(ModelInfo, "/test/model_info", got.append, qos)
            import time

            deadline = time.time() + 25
            while not got and time.time() < deadline:
                rclpy.spin_once(node, timeout_sec=0.2)
            assert got, "no ModelInfo arrived from the publisher process"
            assert got[0].version == "v7" and list(got[0].class_names) == ["root", "shoot"]
        finally:
            rclpy.shutdown()
    finally:
        stop(pub)


def test_viewing_images_are_rate_limited_and_a_zero_rate_shows_every_frame():
    """The viewing images (confidence, masks/<class>, masks/colour) are for people, at
    `viewing_rate_hz`; frames in between are not encoded for them at all."""
    from hades_perception_ros.messages import RateLimit

    limit = RateLimit(2.0)  # one frame per 0.5 s
    shown = [t for t in (0.0, 0.1, 0.3, 0.5, 0.55, 1.2, 1.3, 1.71) if limit.due(t)]
    assert shown == [0.0, 0.5, 1.2, 1.71]
    every = RateLimit(0.0)
    assert all(every.due(t) for t in (0.0, 0.0, 0.001))


def test_the_colour_image_paints_each_class_in_its_colour_the_later_class_over_an_earlier_one():

    import numpy as np
    from std_msgs.msg import Header

    from hades_perception.inference.overlay import class_colour
    from hades_perception_ros.messages import colour_image

    rng = np.random.default_rng(2)
    classes = ("root", "shoot", "seed", "occluded_root")
    masks = {c: rng.random((30, 40)) > 0.6 for c in classes}
    img = colour_image(Header(), masks, (30, 40))
    want = np.zeros((30, 40, 3), np.uint8)
    for i, c in enumerate(classes):  # painted in order: where classes overlap the later one shows
        want[masks[c]] = class_colour(c, i)
    got = np.frombuffer(bytes(img.data), np.uint8).reshape(30, 40, 3)
    assert (img.encoding, img.step) == ("rgb8", 120)
    assert np.array_equal(got, want)


def test_the_colour_image_of_a_model_with_more_than_eight_classes_or_none_is_still_painted():

    import numpy as np
    from std_msgs.msg import Header

    from hades_perception_ros.messages import colour_image

    rng = np.random.default_rng(4)
    many = {f"class{i}": rng.random((6, 7)) > 0.5 for i in range(10)}
    img = colour_image(Header(), many, (6, 7))
    assert len(bytes(img.data)) == 6 * 7 * 3
    none = colour_image(Header(), {}, (6, 7))
    assert bytes(none.data) == bytes(6 * 7 * 3)  # black, and the size the header says


def test_viewing_images_downsampled_keep_a_root_one_pixel_wide_in_view_and_the_masks_message_full_size():
    """viewing_downsample N: the viewing images are 1/N of the frame each way (whole
    N x N blocks), a class shown where any pixel of a block has it, the confidence the
    block's mean; the masks message's images stay full size. At 1 the viewing topics
    carry the masks message's own images."""
    import numpy as np
    from std_msgs.msg import Header

    from hades_perception.inference.prediction import Prediction
    from hades_perception_ros.messages import FrameImages

    h, w = 42, 61
    root = np.zeros((h, w), bool)
    root[:, 17] = True  # a root one pixel wide, in the fifth column of 4 x 4 blocks
    conf = np.full((h, w), 200, np.uint8)
    conf[:4, :4] = 100
    masks = {"root": root, "seed": np.zeros((h, w), bool)}
    pred = Prediction(w, h, ("root", "seed"), masks, conf, [], {}, [], 0.5, {}, None, None)
    images = FrameImages(Header(), pred, downsample=4)
    small = images.view_mask("root")
    assert (small.encoding, small.height, small.width) == ("mono8", 10, 15)
    got = np.frombuffer(bytes(small.data), np.uint8).reshape(10, 15)
    assert (got[:, 4] == 255).all() and not got[:, [3, 5]].any()
    confidence = np.frombuffer(bytes(images.view_confidence().data), np.uint8).reshape(10, 15)
    assert confidence[0, 0] == 100 and confidence[5, 5] == 200
    colour = images.view_colour()
    assert (colour.encoding, colour.height, colour.width) == ("rgb8", 10, 15)
    full = images.mask("root")
    assert (full.height, full.width) == (h, w)
    same = FrameImages(Header(), pred)
    assert same.view_mask("root") is same.mask("root") and same.view_confidence() is same.confidence()


def test_the_masks_message_carries_the_pipelines_masks_and_confidence_pixel_for_pixel(plate):
    """With a real model, the masks message's images, written straight into their own
    buffers (an array.array, which rclpy takes without a copy), are 255 exactly where
    the pipeline's bool masks are and 0 elsewhere, and its confidence image is the
    pipeline's confidence map."""
    import array

    import numpy as np
    from conftest import REPO
    from std_msgs.msg import Header

    from hades_perception.inference.loading import load_pipeline
    from hades_perception_ros.messages import FrameImages

    shipped = REPO / "models" / "hades-seedlings"
    if not (shipped / "manifest.json").is_file():
        pytest.skip(f"{shipped}: the shipped model is not beside this package")
    pred = load_pipeline(shipped, providers=("CPUExecutionProvider",))(plate)
    images = FrameImages(Header(), pred)
    sent = [images.mask(c) for c in pred.classes] + [images.confidence()]
    assert all(isinstance(m.data, array.array) and (m.height, m.width) == plate.shape[:2] for m in sent)
    pixels = [np.frombuffer(m.data, np.uint8).reshape(m.height, m.width) for m in sent]
    for c, got in zip(pred.classes, pixels[:-1], strict=True):
        assert np.array_equal(got, pred.masks[c].view(np.uint8) * 255), c  # the bool mask, made after
    assert pred.masks["root"].any() and np.array_equal(pixels[-1], pred.confidence_map)
