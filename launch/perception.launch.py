"""Hades perception on a robot: `ros2 launch hades_perception perception.launch.py`.

Arguments: namespace (one node per camera), params_file, camera_topic.
Without `ros2 launch` (pip-installed ROS), `hades-perception run` starts the same node
with the same parameters and remapping (a test keeps them in agreement).
"""

from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription(
        [
            DeclareLaunchArgument("namespace", default_value="hades", description="namespace of this camera's node"),
            DeclareLaunchArgument(
                "params_file",
                default_value=PathJoinSubstitution([FindPackageShare("hades_perception"), "config", "perception.yaml"]),
                description="node parameters (YAML)",
            ),
            DeclareLaunchArgument(
                "camera_topic",
                default_value="/hades/camera/image_raw",
                description="the Hades camera's sensor_msgs/Image topic",
            ),
            Node(
                package="hades_perception",
                executable="perception_node",
                name="hades_perception",
                namespace=LaunchConfiguration("namespace"),
                parameters=[LaunchConfiguration("params_file")],
                remappings=[("image_raw", LaunchConfiguration("camera_topic"))],
                output="screen",
                emulate_tty=True,
            ),
        ]
    )
