"""Dataset readers: Hades folders and RootNav RSML, both yielding Sample."""

from pathlib import Path

from hades_training.data.hades_folder import HadesFolder
from hades_training.data.rootnav import RootNavFolder
from hades_training.data.sample import HADES_CLASSES, DatasetError, PlantTruth, PlateTruth, Sample

__all__ = [
    "HADES_CLASSES",
    "DatasetError",
    "HadesFolder",
    "PlantTruth",
    "PlateTruth",
    "RootNavFolder",
    "Sample",
    "open_dataset",
]


def open_dataset(path: str | Path, split: str | None = None, *, skip_bad: bool = False) -> HadesFolder | RootNavFolder:
    """The right reader for a folder: a Hades folder (images/, masks/), optionally
    DIR/<split>; or a RootNav folder (<split>/ and <split>annot/, split default train)."""
    root = Path(path)
    if (root / "images").is_dir() and split is None:
        return HadesFolder(root, skip_bad=skip_bad)
    if split and (root / split / "images").is_dir():
        return HadesFolder(root / split, skip_bad=skip_bad)
    if any((root / d).is_dir() for d in ("trainannot", "valannot", "testannot")):
        return RootNavFolder(root, split or "train", skip_bad=skip_bad)
    raise DatasetError(
        root,
        "not a dataset folder: expected images/ + masks/ (Hades) or <split>/ + <split>annot/ "
        "(RootNav)" + (f", or {split}/images/" if split else ""),
    )
