"""Dataset readers: Hades folders and RootNav RSML, both yielding Sample."""

from hades_training.data.hades_folder import HadesFolder
from hades_training.data.rootnav import RootNavFolder
from hades_training.data.sample import HADES_CLASSES, DatasetError, PlantTruth, PlateTruth, Sample

__all__ = ["HADES_CLASSES", "DatasetError", "HadesFolder", "PlantTruth", "PlateTruth", "RootNavFolder", "Sample"]
