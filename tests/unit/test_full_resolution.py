"""What the pipeline hands out at input resolution: masks and the certainty image are
made when first read, each once, and are what the calibrated logits say at full
resolution (bilinear on logits, then the class's threshold); the model input is
normalised by a per-channel lookup that equals the manifest's formula."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from hades_perception.inference.full_resolution import FullResolutionMasks, certainty_image
from hades_perception.inference.loading import load_pipeline
from hades_perception.inference.pipeline import as_rgb8
from tests.bundles import SHIPPED


@pytest.fixture(scope="module")
def plate() -> np.ndarray:
    image = cv2.imread(str(SHIPPED / "golden" / "input.png"))
    assert image is not None
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def test_a_prediction_makes_no_full_resolution_image_until_one_is_read(plate: np.ndarray):
    pred = load_pipeline(SHIPPED, providers=("CPUExecutionProvider",))(plate)
    assert isinstance(pred.masks, FullResolutionMasks) and pred.masks.made == ()
    assert callable(pred.confidence)  # the certainty image is not made either
    assert pred.plants and pred.class_confidence and pred.signals  # what a robot reads needs neither
    root = pred.masks["root"]
    assert pred.masks.made == ("root",) and pred.masks["root"] is root  # made once, kept
    conf = pred.confidence_map
    assert conf.shape == plate.shape[:2] and conf.dtype == np.uint8 and pred.confidence_map is conf


def test_masks_are_the_calibrated_logits_resized_to_the_crop_and_thresholded():
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 2, (2, 40, 60)).astype(np.float32)
    box, shape = (10, 5, 130, 85), (100, 150)
    masks = FullResolutionMasks(("root", "seed"), logits, [0.5, 0.8], box, shape, (1.0, 1.7))
    assert list(masks) == ["root", "seed"] and len(masks) == 2 and "seed" in masks and "shoot" not in masks
    with pytest.raises(KeyError):
        masks["shoot"]
    for c, (name, thr, temperature) in enumerate((("root", 0.5, 1.0), ("seed", 0.8, 1.7))):
        up = cv2.resize(logits[c] / np.float32(temperature), (120, 80), interpolation=cv2.INTER_LINEAR)
        want = np.zeros(shape, bool)
        want[5:85, 10:130] = up > np.log(thr / (1 - thr))
        assert np.array_equal(masks[name], want), name


def test_a_mask_written_as_mono8_into_a_given_buffer_is_the_bool_mask_times_255():
    """The ROS node has each class written straight into its message's buffer: whatever
    the buffer held, it ends 255 where the bool mask is true and 0 elsewhere, whether the
    bool mask was made before (then it is the source) or after (then the logits are)."""
    rng = np.random.default_rng(5)
    logits = rng.normal(0, 2, (2, 40, 60)).astype(np.float32)
    box, shape = (10, 5, 130, 85), (100, 150)
    for bool_first in (False, True):
        masks = FullResolutionMasks(("root", "seed"), logits, [0.5, 0.8], box, shape, (1.0, 1.7))
        if bool_first:
            masks["seed"]
        buffers = {c: rng.integers(0, 256, shape, dtype=np.uint8) for c in masks}  # whatever was there
        mono = {c: masks.mono8(c, buffers[c]) for c in masks}
        for c in masks:
            assert mono[c] is buffers[c] and set(np.unique(mono[c])) <= {0, 255}
            assert np.array_equal(mono[c], masks[c].view(np.uint8) * 255), (c, bool_first)
            assert masks[c].dtype == bool and masks[c].sum() == np.count_nonzero(mono[c])
        assert np.array_equal(masks.mono8("root"), mono["root"])  # a new array when none is given


def test_the_certainty_image_is_the_least_sure_class_and_the_same_written_into_a_given_buffer():
    rng = np.random.default_rng(6)
    probs = rng.random((3, 20, 30)).astype(np.float32)
    box, shape = (4, 3, 64, 43), (50, 70)
    out = rng.integers(0, 256, shape, dtype=np.uint8)
    assert certainty_image(probs, box, shape, out=out) is out
    assert np.array_equal(out, certainty_image(probs, box, shape))
    least = np.min(np.maximum(probs, 1 - probs), axis=0)  # the definition, all classes at once
    small = np.round((least - 0.5) * 2 * 255).astype(np.uint8)
    want = np.full(shape, 255, np.uint8)
    want[3:43, 4:64] = cv2.resize(small, (60, 40), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(out, want)


def test_the_certainty_image_is_255_outside_the_crop_and_0_where_a_class_is_a_coin_toss():
    probs = np.full((2, 4, 4), 0.99, np.float32)
    probs[1, 0, 0] = 0.5
    conf = certainty_image(probs, (2, 2, 10, 10), (12, 12))
    assert conf[0, 0] == 255 and conf[11, 11] == 255
    assert conf[2, 2] < 20 and conf[9, 9] > 240


def test_the_model_input_is_normalised_as_the_manifest_says(plate: np.ndarray):
    pipe = load_pipeline(SHIPPED, providers=("CPUExecutionProvider",))
    rgb = as_rgb8(plate)
    box = pipe.locate(rgb)[1]
    chw, frame = pipe.to_model_input(rgb, box)
    spec = pipe.manifest.input
    x0, y0, x1, y1 = box
    size = (round((x1 - x0) * spec.scale), round((y1 - y0) * spec.scale))
    scaled = cv2.resize(rgb[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA)
    mean, std = np.array(spec.mean).reshape(3, 1, 1), np.array(spec.std).reshape(3, 1, 1)
    want = (scaled.transpose(2, 0, 1) / 255.0 - mean) / std
    assert chw.dtype == np.float32 and np.allclose(chw, want, atol=1e-5)
    assert (frame.x0, frame.y0, frame.scale) == (x0, y0, spec.scale)
