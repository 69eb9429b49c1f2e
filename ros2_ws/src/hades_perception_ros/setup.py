"""ament_python build of the ROS 2 package: `colcon build` installs the node
executable in lib/hades_perception_ros/ (where `ros2 run` and launch_ros look, see
setup.cfg), package.xml, launch/ and config/ in share/hades_perception_ros/."""

from glob import glob

from setuptools import setup

PACKAGE = "hades_perception_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=[PACKAGE],
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
    ],
    # hades_perception (the core) and rosbags come from pip; rclpy and the messages from ROS 2.
    install_requires=["setuptools"],
    extras_require={"test": ["pytest"]},  # colcon test runs pytest on test/ when it sees this
    zip_safe=True,
    maintainer="Hades Perception maintainers",
    maintainer_email="hades-perception@example.org",
    description="ROS 2 node for NPEC Hades Petri-dish images: masks, root-tip landmarks, plants, certainty",
    license="Apache-2.0",
    entry_points={"console_scripts": ["perception_node = hades_perception_ros.node:main"]},
)
