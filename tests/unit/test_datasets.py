"""Dataset readers: Hades folders and RootNav, their landmarks, and clear errors on bad items."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from hades_training.data import DatasetError, HadesFolder, RootNavFolder, open_dataset
from hades_training.data.sample import HADES_CLASSES


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_hades_folder_loads_images_masks_and_landmarks(small_plates: Path):
    ds = HadesFolder(small_plates)
    assert len(ds) == 4
    s = ds[0]
    assert s.image.shape == (752, 1050, 3) and s.image.dtype == np.uint8
    assert set(s.masks) == set(HADES_CLASSES)
    assert all(m.shape == (752, 1050) and m.max() <= 1 for m in s.masks.values())
    assert s.annotated == HADES_CLASSES
    assert s.truth.source == "file" and len(s.truth.plants) == 5
    assert s.group == "exp000"


def test_landmarks_derived_from_masks_agree_with_the_generators_truth(small_plates: Path, tmp_path: Path):
    folder = _copy(small_plates, tmp_path / "no_landmarks")
    shutil.rmtree(folder / "landmarks")
    truth, derived = HadesFolder(small_plates), HadesFolder(folder)
    for i in range(len(truth)):
        t, d = truth[i].truth, derived[i].truth
        assert d.source == "derived from masks"
        assert [p.index for p in d.plants] == [0, 1, 2, 3, 4]
        for pt, pd in zip(t.plants, d.plants, strict=True):
            assert pd.primary_root_tip is not None and pt.primary_root_tip is not None
            assert (
                np.hypot(
                    pd.primary_root_tip[0] - pt.primary_root_tip[0], pd.primary_root_tip[1] - pt.primary_root_tip[1]
                )
                <= 3.0
            )
            assert pd.primary_root_length_px == pytest.approx(pt.primary_root_length_px, rel=0.05)


def test_0_255_masks_and_a_missing_occluded_mask_are_accepted(small_plates: Path, tmp_path: Path):
    folder = _copy(small_plates, tmp_path / "npec_style")
    stem = HadesFolder(folder).items[0].stem
    root = folder / "masks" / f"{stem}_root_mask.tif"
    mask = cv2.imread(str(root), cv2.IMREAD_UNCHANGED)
    assert mask is not None
    cv2.imwrite(str(root), mask * 255)
    (folder / "masks" / f"{stem}_occluded_root_mask.tif").unlink()
    s = HadesFolder(folder)[0]
    assert s.masks["root"].max() == 1
    assert "occluded_root" not in s.annotated and not s.masks["occluded_root"].any()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("missing_mask", "shoot_mask.tif: mask file is missing"),
        ("wrong_size_mask", "mask is 100x80 px but its image is 1050x752 px"),
        ("unreadable_image", "image cannot be decoded"),
        ("malformed_landmarks", "malformed landmarks JSON"),
    ],
)
def test_a_bad_item_names_its_file_and_skip_bad_loads_the_rest(
    small_plates: Path, tmp_path: Path, damage: str, message: str
):
    folder = _copy(small_plates, tmp_path / damage)
    stem = HadesFolder(folder).items[1].stem
    if damage == "missing_mask":
        (folder / "masks" / f"{stem}_shoot_mask.tif").unlink()
    elif damage == "wrong_size_mask":
        cv2.imwrite(str(folder / "masks" / f"{stem}_root_mask.tif"), np.zeros((80, 100), np.uint8))
    elif damage == "unreadable_image":
        img = folder / "images" / f"{stem}.png"
        img.write_bytes(img.read_bytes()[:2000])  # truncated PNG
    else:
        (folder / "landmarks" / f"{stem}.json").write_text('{"width": 1050, "plants": [')

    ds = HadesFolder(folder)
    with pytest.raises(DatasetError, match=message) as err:
        ds[1]
    assert stem in str(err.value)

    kept = HadesFolder(folder, skip_bad=True)
    assert len(kept) == 3 and stem not in [it.stem for it in kept.items]
    assert len(kept.skipped) == 1 and stem in str(kept.skipped[0])


def test_a_folder_that_is_not_a_dataset_says_what_it_expected(tmp_path: Path):
    with pytest.raises(DatasetError, match="expected images/"):
        open_dataset(tmp_path)


@pytest.mark.shared_data
def test_rootnav_split_loads_with_landmarks_from_rsml(rootnav_dir: Path):
    ds = RootNavFolder(rootnav_dir, "train")
    assert len(ds) == 10
    s = ds[0]
    assert s.image.shape == (2500, 1916, 3)
    assert s.annotated == ("root", "seed")
    assert s.masks["root"].sum() > 10_000 and not s.masks["shoot"].any()
    plant = s.truth.plants[0]
    assert plant.primary_root_tip is not None and plant.seed is not None
    # The primary tip lies on the root mask and below the seed.
    x, y = map(round, plant.primary_root_tip)
    assert s.masks["root"][y - 3 : y + 4, x - 3 : x + 4].any()
    assert plant.primary_root_tip[1] > plant.seed[1]
    assert s.truth.px_per_mm is None
    assert open_dataset(rootnav_dir, "valid").items[0].stem.startswith("A_")


@pytest.mark.shared_data
def test_malformed_rsml_names_the_file_and_skip_bad_keeps_the_rest(rootnav_dir: Path, tmp_path: Path):
    root = tmp_path / "rootnav"
    shutil.copytree(rootnav_dir / "valid", root / "valid")
    shutil.copytree(rootnav_dir / "valannot", root / "valannot")
    bad = sorted((root / "valid").glob("*.rsml"))[0]
    bad.write_text("<rsml><scene><plant><root>")
    with pytest.raises(DatasetError, match="malformed RSML") as err:
        RootNavFolder(root, "valid")[0]
    assert bad.name in str(err.value)
    assert len(RootNavFolder(root, "valid", skip_bad=True)) == 4
