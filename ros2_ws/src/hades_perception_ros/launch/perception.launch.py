"""Hades perception on a robot: `ros2 launch hades_perception_ros perception.launch.py`.

Arguments: namespace (one node per camera), params_file, camera_topic. The names and
defaults come from hades_perception_ros.launching, the one place that `hades-perception
run` (pip-installed ROS, no `ros2 launch`) uses too.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from hades_perception_ros.launching import (
    DEFAULT_CAMERA_TOPIC,
    DEFAULT_NAMESPACE,
    DEFAULT_PARAMS,
    EXECUTABLE,
    INPUT_REMAP,
    NODE_NAME,
    PACKAGE,
)


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument(
                "namespace", default_value=DEFAULT_NAMESPACE, description="namespace of this camera's node"
            ),
            DeclareLaunchArgument(
                "params_file",
                default_value=PathJoinSubstitution([FindPackageShare(PACKAGE), DEFAULT_PARAMS]),
                description="node parameters (YAML)",
            ),
            DeclareLaunchArgument(
                "camera_topic", default_value=DEFAULT_CAMERA_TOPIC, description="the Hades camera's image topic"
            ),
            Node(
                package=PACKAGE,
                executable=EXECUTABLE,
                name=NODE_NAME,
                namespace=LaunchConfiguration("namespace"),
                parameters=[LaunchConfiguration("params_file")],
                remappings=[(INPUT_REMAP, LaunchConfiguration("camera_topic"))],
                output="screen",
                emulate_tty=True,
            ),
        ]
    )
