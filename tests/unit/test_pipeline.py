"""The serving pipeline (pure Python): input handling, tiling, coordinates, landmark
decoding, the bundle contract, and the golden check."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from hades_perception.contract.bundle import BundleError, file_entries, open_bundle, write_manifest
from hades_perception.contract.golden import check_golden
from hades_perception.inference.dish import find_dish
from hades_perception.inference.geometry import Frame, cell_to_grid, grid_to_cell, grid_to_model, model_to_grid
from hades_perception.inference.landmarks import PRIMARY, SEED, TIP, Located, assign_plants
from hades_perception.inference.pipeline import MAX_PIXELS, InputError, Pipeline, _sigmoid, as_rgb8, tile_origins
from hades_training.data import HadesFolder
from hades_training.data.sample import PlantTruth, PlateTruth, Sample
from hades_training.synth.appearance import PRESETS
from hades_training.synth.generate import make_plate
from hades_training.targets import landmark_points, prepare
from tests.bundles import SHIPPED

# --- inputs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "shape"),
    [
        (np.zeros((6, 8), np.uint8), (6, 8, 3)),  # mono8
        (np.full((6, 8), 65535, np.uint16), (6, 8, 3)),  # mono16
        (np.zeros((6, 8, 4), np.uint8), (6, 8, 3)),  # rgba
        (np.zeros((6, 8, 3), np.uint8), (6, 8, 3)),
    ],
)
def test_grey_16_bit_and_rgba_frames_become_rgb8(image: np.ndarray, shape: tuple[int, ...]):
    out = as_rgb8(image)
    assert out.shape == shape and out.dtype == np.uint8
    if image.dtype == np.uint16:
        assert out.max() == 255


def test_a_grey_frame_becomes_three_equal_channels_of_its_pixels():
    grey = np.random.default_rng(3).integers(0, 256, (7, 12), dtype=np.uint8)
    for image in (grey, grey[:, ::2], grey[::-1]):  # contiguous, strided and flipped views
        out = as_rgb8(image)
        assert np.array_equal(out, np.repeat(image[:, :, None], 3, axis=2))


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((0, 8), np.uint8), "empty image"),
        (np.zeros((6, 8), np.float32), "uint8 or uint16"),
        (np.zeros((6, 8, 2), np.uint8), "1, 3 or 4 channels"),
        (np.zeros((4,), np.uint8), r"\(H, W\)"),
    ],
)
def test_unusable_frames_are_refused_with_what_was_expected(image: np.ndarray, message: str):
    with pytest.raises(InputError, match=message):
        as_rgb8(image)


def test_a_frame_above_the_pixel_limit_is_refused_before_any_copy():
    huge = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), shape=(9000, MAX_PIXELS // 9000 + 10), strides=(0, 0))
    with pytest.raises(InputError, match="pixel limit"):
        as_rgb8(huge)


def test_tiles_cover_the_image_and_overlap_by_at_least_the_margin():
    for length, tile, overlap in [(1410, 768, 64), (768, 768, 64), (100, 768, 64), (3000, 512, 96)]:
        starts = tile_origins(length, tile, overlap)
        assert starts[0] == 0 and starts[-1] + min(tile, length) >= length
        assert all(b - a <= tile - overlap for a, b in itertools.pairwise(starts))


# --- coordinates ------------------------------------------------------------------------


def test_image_model_and_grid_coordinates_round_trip():
    frame = Frame(720, 120, 0.5)
    x, y = np.array([720.0, 1500.3, 3539.0]), np.array([120.0, 800.7, 2859.0])
    u, v = frame.to_model(x, y)
    back = frame.to_image(grid_to_model(model_to_grid(u, 4), 4), grid_to_model(model_to_grid(v, 4), 4))
    assert np.allclose(back, (x, y))


class OracleEngine:
    """Stands in for a perfect network: returns the training targets as logits.
    Not a fake of a dependency: it isolates the pipeline's own decoding."""

    name = "oracle"
    precision = "fp32"

    def __init__(self, seg: np.ndarray, heat: np.ndarray) -> None:
        self.seg, self.heat = seg, heat

    def run(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        h, w = inputs.shape[2:]
        logit = lambda p: np.log(np.clip(p, 1e-4, 1 - 1e-4) / (1 - np.clip(p, 1e-4, 1 - 1e-4)))  # noqa: E731
        seg = np.zeros((1, self.seg.shape[0], h, w), np.float32) - 9
        seg[0, :, : self.seg.shape[1], : self.seg.shape[2]] = logit(self.seg)[:, :h, :w]
        heat = np.zeros((1, self.heat.shape[0], h // 4, w // 4), np.float32) - 9
        hh, hw = min(h // 4, self.heat.shape[1]), min(w // 4, self.heat.shape[2])
        heat[0, :, :hh, :hw] = logit(self.heat)[:, :hh, :hw]
        return {"seg_logits": seg, "heatmap_logits": heat}


class PointwiseEngine:
    """Logits that depend on each input pixel alone: tiling must not change them."""

    name, precision = "pointwise", "fp32"

    def run(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        x = inputs[0]
        seg = np.stack([x[0], x[1] - x[2], x.sum(0), -x[0]])[None]
        # Stride 4: a tile's heatmap cells start where the tile does, at model pixels that
        # need not be multiples of 4, so only a constant is the same from every tile.
        heat = np.full((1, 3, x.shape[1] // 4, x.shape[2] // 4), 2.5)
        return {"seg_logits": seg.astype(np.float32), "heatmap_logits": heat.astype(np.float32)}


def test_the_model_input_is_the_crop_scaled_and_normalised_per_channel_in_chw_order(tiny_bundle: Path):
    shipped = open_bundle(tiny_bundle)
    norm = {"mean": [0.4, 0.5, 0.6], "std": [0.2, 0.25, 0.3]}  # channels apart, so an order mix-up shows
    manifest = type(shipped).from_dict(shipped.raw | {"input": {**shipped.raw["input"], "normalisation": norm}})
    pipe = Pipeline(manifest, PointwiseEngine())
    rgb = np.random.default_rng(4).integers(0, 256, (301, 410, 3), dtype=np.uint8)
    box = (6, 10, 406, 290)
    chw, frame = pipe.to_model_input(rgb, box)
    s, spec = manifest.input.scale, manifest.input
    crop = rgb[10:290, 6:406]
    scaled = cv2.resize(crop, (round(400 * s), round(280 * s)), interpolation=cv2.INTER_AREA) if s != 1 else crop
    levels = scaled.astype(np.float32) / np.float32(255.0)
    channels = enumerate(zip(spec.mean, spec.std, strict=True))
    want = np.stack([(levels[:, :, c] - np.float32(m)) / np.float32(sd) for c, (m, sd) in channels])
    assert chw.dtype == np.float32 and chw.flags.c_contiguous and (frame.x0, frame.y0, frame.scale) == (6, 10, s)
    np.testing.assert_allclose(chw, want, rtol=0, atol=1e-6)


def test_overlapping_tiles_blend_to_what_one_run_over_the_whole_input_gives(tiny_bundle: Path):
    manifest = open_bundle(tiny_bundle)
    chw = np.random.default_rng(0).normal(size=(3, 1376, 1416)).astype(np.float32)
    tiled = Pipeline(manifest, PointwiseEngine())
    whole = manifest.raw | {"input": {**manifest.raw["input"], "tile": 2048}}
    one = Pipeline(type(manifest).from_dict(whole), PointwiseEngine())
    assert manifest.input.tile < 1376  # the input takes overlapping tiles
    t, o = tiled.infer(chw), one.infer(chw)
    (seg_t, heat_t), (seg_1, heat_1) = (t.seg, t.heat), (o.seg, o.heat)
    assert seg_t.shape == seg_1.shape == (4, 1376, 1416) and heat_t.shape == heat_1.shape
    np.testing.assert_allclose(seg_t, seg_1, atol=1e-5)
    np.testing.assert_allclose(seg_1[1], chw[1] - chw[2], atol=1e-5)
    np.testing.assert_allclose(heat_t, 2.5, atol=1e-5)
    np.testing.assert_allclose(heat_1, 2.5, atol=1e-5)
    strip = chw[:, :10, :]  # one tile high, several wide: lower than the overlap itself
    s = tiled.infer(strip)
    seg_s, heat_s = s.seg, s.heat
    np.testing.assert_allclose(seg_s[1], strip[1] - strip[2], atol=1e-5)
    np.testing.assert_allclose(heat_s, 2.5, atol=1e-5)


class SpotEngine:
    """A heatmap peak, in the tile's own cells, on the tile's bright input pixel if it has
    one: a network that finds a landmark exactly where it is, and nothing elsewhere."""

    name, precision = "spot", "fp32"

    def run(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        x = inputs[0]
        seg = np.zeros((1, 4, *x.shape[1:]), np.float32)
        heat = np.full((1, 3, x.shape[1] // 4, x.shape[2] // 4), -10.0, np.float32)
        if x[0].max() > 0:
            v, u = (float(i) for i in np.unravel_index(np.argmax(x[0]), x[0].shape))
            gv, gu = np.mgrid[0 : heat.shape[2], 0 : heat.shape[3]]
            d2 = (gu - model_to_grid(u, 4)) ** 2 + (gv - model_to_grid(v, 4)) ** 2
            heat[0] = np.maximum(6.0 - 4.0 * d2, -10.0)
        return {"seg_logits": seg, "heatmap_logits": heat}


def test_landmarks_come_back_where_they_are_from_tiles_that_start_between_heatmap_cells(tiny_bundle: Path):
    manifest = open_bundle(tiny_bundle)
    pipe = Pipeline(manifest, SpotEngine())
    h, w = 1380, 1416
    tile, overlap = manifest.input.tile, manifest.input.tile_overlap
    assert tile_origins(h, tile, overlap)[:4] == [0, 187, 375, 562]  # 3, 3 and 2 px past a cell's start
    assert tile_origins(w, tile, overlap)[2:5] == [387, 580, 773]  # 3, 0 and 1 px past
    # Seen by one tile, its cells 3 px off down and across; by two tiles each way; by one
    # tile, 2 px off down and 1 px across; by aligned tiles only, near the corner.
    for spot in [(500, 300), (610, 420), (900, 650), (w - 5, h - 7)]:
        chw = np.zeros((3, h, w), np.float32)
        chw[0, spot[1], spot[0]] = 1.0
        logits = pipe.infer(chw)
        ((x, y, _),) = pipe.peaks(_sigmoid(logits.heat[0]), logits.heat_shift, 0.5, Frame(0, 0, 1.0))
        assert abs(x - spot[0]) < 0.5 and abs(y - spot[1]) < 0.5, (spot, x, y)


def test_a_heatmap_cell_and_where_its_content_lies_map_both_ways():
    shift = np.concatenate([np.zeros(5), np.linspace(0, 0.75, 16), np.full(5, 0.75)]).astype(np.float32)
    for c in np.linspace(0, 25, 101):
        assert abs(grid_to_cell(cell_to_grid(c, shift), shift) - c) < 0.04
    assert cell_to_grid(2.0, shift) == 2.0 and cell_to_grid(23.0, shift) == 23.75
    assert grid_to_cell(3.0, np.zeros(0)) == 3.0  # no cells, no shift


def test_the_sigmoid_is_the_logistic_function_of_logits_over_temperature_in_any_memory_layout():
    logits = np.random.default_rng(1).normal(0, 6, (4, 30, 40)).astype(np.float32)
    temps = np.array([1.0, 1.5, 2.0, 0.5], np.float32).reshape(-1, 1, 1)
    layouts = [
        logits,
        np.asfortranarray(logits),
        logits.transpose(0, 2, 1),
        logits[:, ::2, 1:],
        logits[0].T,
        logits[0, 0],
    ]
    for x in layouts:
        t: np.ndarray | float = temps if x.ndim == 3 else 1.5
        np.testing.assert_allclose(_sigmoid(x, t), 1 / (1 + np.exp(-x.astype(np.float64) / t)), atol=2e-7)
    assert _sigmoid(np.zeros((0, 5), np.float32)).shape == (0, 5)
    np.testing.assert_array_equal(_sigmoid(np.array([np.inf, -np.inf, 200, -200], np.float32)), [1, 0, 1, 0])


def test_targets_decode_back_to_the_true_landmarks_and_masks(tiny_bundle: Path):
    """Training renders targets and the pipeline decodes them with the same geometry:
    a perfect network would give landmarks within a pixel or two of the truth."""
    manifest = open_bundle(tiny_bundle)
    plate = make_plate(21, 0, PRESETS["normal"])  # full size: thin roots as the model sees them
    plants = [PlantTruth.from_dict(p) for p in plate.landmarks["plants"]]
    sample = Sample(
        plate.stem,
        "exp000",
        plate.image,
        plate.masks,
        tuple(plate.masks),
        PlateTruth(4202, 3006, None, plants, "file"),
        Path(f"{plate.stem}.png"),
    )
    t = prepare(
        sample,
        manifest.outputs.classes,
        manifest.outputs.landmark_kinds,
        scale=manifest.input.scale,
        crop=manifest.input.crop,
        stride=4,
        sigma=1.5,
    )
    raw = dict(manifest.raw)
    raw["calibration"] = {
        **raw["calibration"],
        "seg_temperature": [1.0] * 4,
        "landmark_temperature": [1.0] * 3,
        "mask_thresholds": [0.5] * 4,
    }
    raw["input"] = {**raw["input"], "tile": 2048}  # one tile: the oracle knows no tile offsets
    pipe = Pipeline(type(manifest).from_dict(raw), OracleEngine(t.seg, t.heat))
    pred = pipe(plate.image)
    truth = landmark_points(sample, (PRIMARY, TIP, SEED))
    got = [lm for lm in pred.landmarks if lm.kind == PRIMARY]
    assert len(got) == 5
    for lm, (tx, ty) in zip(sorted(got, key=lambda g: g.x), sorted(truth[PRIMARY]), strict=True):
        assert abs(lm.x - tx) < 2.0 and abs(lm.y - ty) < 2.0
    assert [lm.plant for lm in got] == [0, 1, 2, 3, 4]
    gt = plate.masks["root"] > 0
    assert (pred.masks["root"] & gt).sum() / (pred.masks["root"] | gt).sum() > 0.9
    assert pred.px_per_mm == pytest.approx(plate.landmarks["px_per_mm"], rel=0.02)


def test_plants_are_numbered_by_seeds_and_each_gets_its_nearest_primary_tip():
    found = [Located(SEED, x, 500, 0.9) for x in (1300, 700, 2500, 1900, 3100)]
    found += [Located(PRIMARY, x + 30, 1500, 0.8) for x in (3100, 700, 1900, 1300, 2500)]
    found += [Located(TIP, 760, 900, 0.6), Located(PRIMARY, 1340, 1000, 0.2)]  # a lateral mistaken as primary
    out = assign_plants(found, 5)
    primaries = [lm for lm in out if lm.kind == PRIMARY]
    assert [lm.plant for lm in primaries] == [0, 1, 2, 3, 4]
    assert [lm.x for lm in primaries] == [730, 1330, 1930, 2530, 3130]
    assert [lm.kind for lm in out][:5] == [PRIMARY] * 5 and out[-1].kind == SEED
    assert any(lm.kind == TIP and lm.x == 1340 for lm in out)  # demoted, not lost


def test_the_dish_is_found_on_a_synthetic_plate(small_plates: Path):
    s = HadesFolder(small_plates)[0]
    dish = find_dish(s.image[:, :, 1])
    truth = json.loads((small_plates / "landmarks" / f"{s.stem}.json").read_text())["dish_px"]
    assert dish is not None
    assert np.allclose([dish.x0, dish.y0, dish.x1, dish.y1], truth, atol=8)
    assert find_dish(np.zeros((300, 400), np.uint8)) is None
    assert dish.cut == ()  # a whole frame: the agar stops inside it on every side


def test_halving_the_frame_first_finds_the_same_dish_as_the_direct_work_copy(monkeypatch: pytest.MonkeyPatch):
    """The crop is part of the model's input contract, so the faster route to the work
    copy (2x2 blocks first) gives the boxes the direct one gave: full frames and crops to
    the dish, RGB and grey, of both presets. (It is not exact: on 528 plates 3 boxes moved
    by one work-copy pixel; inference/dish.py says what that changed.)"""
    from hades_perception.inference import dish as dish_module

    plates = [make_plate(900, 0, PRESETS["normal"]).image] + [
        make_plate(901, i, PRESETS["realistic"]).image for i in (0, 4, 8, 12)
    ]
    greys = [p if p.ndim == 2 else p[:, :, 1] for p in plates]
    assert {g.shape[1] > 4000 for g in greys} == {True, False}  # full frames and crops
    fast = [find_dish(g) for g in greys]
    monkeypatch.setattr(dish_module, "_halved", lambda grey, f: grey)
    assert fast == [find_dish(g) for g in greys] and all(d is not None for d in fast)


@pytest.mark.parametrize("side", ["left", "right", "top", "bottom"])
def test_a_dish_cut_by_the_image_edge_names_the_side_and_its_whole_extent_and_scale_follow(
    small_plates: Path, side: str
):
    # A third of the agar cut away on one side: the other dimension is whole, and the
    # agar's aspect (AGAR_ASPECT) gives the missing edge, so px/mm and the plants' slots
    # stay right (it was 0.7 of the width before, or no dish at all).
    s = HadesFolder(small_plates)[0]
    truth = json.loads((small_plates / "landmarks" / f"{s.stem}.json").read_text())
    x0, y0, x1, y1 = truth["dish_px"]
    dx, dy = (int(x0 + 0.35 * (x1 - x0)) if side == "left" else 0), (int(y0 + 0.35 * (y1 - y0)) if side == "top" else 0)
    stop_x = int(x1 - 0.35 * (x1 - x0)) if side == "right" else None
    stop_y = int(y1 - 0.35 * (y1 - y0)) if side == "bottom" else None
    dish = find_dish(s.image[dy:stop_y, dx:stop_x, 1])
    assert dish is not None and dish.cut == (side,)
    assert dish.px_per_mm() == pytest.approx(truth["px_per_mm"], rel=0.03)
    (sx0, sx1), (sy0, sy1) = dish.span_x, dish.span_y
    assert np.allclose([sx0 + dx, sy0 + dy, sx1 + dx, sy1 + dy], truth["dish_px"], atol=0.03 * (x1 - x0))


def test_a_crop_at_the_agar_on_every_side_is_taken_as_the_whole_dish(small_plates: Path):
    s = HadesFolder(small_plates)[0]
    x0, y0, x1, y1 = (
        int(v) for v in json.loads((small_plates / "landmarks" / f"{s.stem}.json").read_text())["dish_px"]
    )
    dish = find_dish(s.image[y0 + 4 : y1 - 4, x0 + 4 : x1 - 4, 1])
    assert dish is not None and set(dish.cut) == {"left", "top", "right", "bottom"}
    assert dish.span_x == (dish.x0, dish.x1) and dish.span_y == (dish.y0, dish.y1)  # nothing to infer from
    assert dish.px_per_mm() == dish.width / 120.0


# --- the bundle contract ------------------------------------------------------------------


def test_a_bundle_with_a_changed_or_missing_file_is_refused(tiny_bundle: Path, tmp_path: Path):
    bad = shutil.copytree(tiny_bundle, tmp_path / "bad")
    data = bytearray((bad / "model.onnx").read_bytes())
    data[-100] ^= 0xFF
    (bad / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        open_bundle(bad)
    (bad / "golden" / "input.png").unlink()
    with pytest.raises(BundleError, match="missing"):
        open_bundle(bad)
    (bad / "manifest.json").write_text("{")
    with pytest.raises(BundleError, match="unreadable manifest"):
        open_bundle(bad)


def test_the_golden_check_passes_the_exported_model_and_fails_a_different_one(tiny_bundle: Path, tmp_path: Path):
    report = check_golden(tiny_bundle, Pipeline.from_bundle(tiny_bundle, providers=("CPUExecutionProvider",)))
    assert report.ok, report.problems
    exported = json.loads((tiny_bundle / "golden" / "expected.json").read_text())["latency_ms"]
    assert report.figures["latency_budget_ms"] == pytest.approx(10 * exported)  # the default: 10x export
    # A model that passes its checksums but computes something else: weights changed
    # and the manifest re-written to match (what a broken build would ship).
    import onnx
    from onnx import numpy_helper

    other = shutil.copytree(tiny_bundle, tmp_path / "other")
    model = onnx.load(str(other / "model.onnx"))
    for init in model.graph.initializer:
        if init.name.endswith("seg_head.bias") or "seg_head" in init.name:
            arr = numpy_helper.to_array(init)
            init.CopyFrom(numpy_helper.from_array(arr + 8.0, init.name))
    onnx.save(model, str(other / "model.onnx"))
    raw = json.loads((other / "manifest.json").read_text())
    raw["files"] = file_entries(other)
    write_manifest(other, raw)
    bad = check_golden(other, Pipeline.from_bundle(other, providers=("CPUExecutionProvider",)))
    assert not bad.ok
    assert any("mask agrees" in p for p in bad.problems)


@pytest.mark.parametrize(("cells", "ok"), [(0.9, True), (1.5, False)], ids=["within a cell", "past a cell"])
def test_a_golden_peak_may_move_within_its_heatmap_cell_and_no_farther(tmp_path: Path, cells: float, ok: bool):
    """Engines round a peak's 3x3 neighbours differently (OpenVINO against ONNX Runtime
    on an int8 model), which moves the centroid inside its cell; farther is another peak."""
    bundle = shutil.copytree(SHIPPED, tmp_path / "moved")
    raw = json.loads((bundle / "manifest.json").read_text())
    cell = raw["outputs"]["landmarks"]["stride"] / raw["input"]["scale"]
    path = bundle / "golden" / "expected.json"
    expected = json.loads(path.read_text())
    expected["peaks"][0]["x"] += cells * max(cell, 3.0)
    path.write_text(json.dumps(expected))
    raw["files"] = file_entries(bundle)
    write_manifest(bundle, raw)
    report = check_golden(bundle, Pipeline.from_bundle(bundle, providers=("CPUExecutionProvider",)))
    assert report.ok is ok, report.problems
    assert report.figures["landmarks_missing"] == (0 if ok else 1)


def test_prediction_json_has_the_documented_shape(tiny_bundle: Path, small_plates: Path):
    pipe = Pipeline.from_bundle(tiny_bundle, providers=("CPUExecutionProvider",))
    s = HadesFolder(small_plates)[0]
    pred = pipe(s.image)
    assert all(m.shape == s.image.shape[:2] and m.dtype == bool for m in pred.masks.values())
    assert pred.confidence_map.shape == s.image.shape[:2]
    d = pred.to_json()
    assert set(d) >= {"image", "model", "landmarks", "certainty", "timing_ms"}
    assert d["model"]["version"] == "0.0.1-test" and len(d["model"]["sha256"]) == 64
    assert set(d["certainty"]) >= {"per_class", "per_plant", "low_confidence"}
    assert len(d["certainty"]["per_plant"]) == 5  # every expected plant, found or not
    assert set(d["certainty"]["per_class"]) == {"root", "shoot", "seed", "occluded_root"}


def test_a_frames_second_half_on_another_thread_beside_the_next_frames_first_gives_the_same_result(
    tiny_bundle: Path, small_plates: Path
):
    # What the node does: finish(frame i) on one thread while start(frame i+1) runs on another.
    import threading

    pipe = Pipeline.from_bundle(tiny_bundle, providers=("CPUExecutionProvider",))
    images = [HadesFolder(small_plates)[i].image for i in range(2)]
    alone = [pipe(im).to_json() for im in images]
    first = pipe.start(images[0])
    got: dict[int, dict] = {}
    second = threading.Thread(target=lambda: got.setdefault(0, pipe.finish(first).to_json()))
    second.start()
    inferred = pipe.start(images[1])
    second.join()
    got[1] = pipe.finish(inferred).to_json()
    for i in range(2):
        for d in (alone[i], got[i]):
            d.pop("timing_ms")
        assert got[i] == alone[i]
    assert set(pipe(images[0]).timing_ms) == {"preprocess", "engine", "postprocess", "monitoring", "total"}
