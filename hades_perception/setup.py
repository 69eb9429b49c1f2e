"""ament_python entry point: colcon builds this package for ROS 2 installs.

Metadata and dependencies live in pyproject.toml; this file only adds what ament
needs (the package marker, package.xml, config and launch files in share/).
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "hades_perception"

setup(
    # Explicit: colcon builds from a folder that also holds its own helper dirs.
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
        # launch/ is a link to the repository's top-level launch folder.
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
    ],
)
