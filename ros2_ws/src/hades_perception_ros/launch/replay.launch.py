"""Replay a Hades rosbag through the perception node and record its outputs:
`ros2 launch hades_perception_ros replay.launch.py bag:=/path/to/bag record:=/path/to/out`.

On machines without `ros2 launch`/`ros2 bag`, `hades-perception run` plus
`hades-perception replay BAG --record OUT` do the same.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

from hades_perception_ros.launching import DEFAULT_CAMERA_TOPIC, DEFAULT_NAMESPACE, PACKAGE


def generate_launch_description() -> LaunchDescription:
    ns = LaunchConfiguration("namespace")
    return LaunchDescription(
        [
            DeclareLaunchArgument("bag", description="rosbag2 folder with the camera topic"),
            DeclareLaunchArgument("record", default_value="hades_perception_outputs", description="output bag"),
            DeclareLaunchArgument("namespace", default_value=DEFAULT_NAMESPACE),
            DeclareLaunchArgument("camera_topic", default_value=DEFAULT_CAMERA_TOPIC),
            DeclareLaunchArgument("rate", default_value="1.0", description="playback rate factor"),
            IncludeLaunchDescription(
                PythonLaunchDescriptionSource(
                    PathJoinSubstitution([FindPackageShare(PACKAGE), "launch", "perception.launch.py"])
                ),
                launch_arguments={"namespace": ns, "camera_topic": LaunchConfiguration("camera_topic")}.items(),
            ),
            ExecuteProcess(
                cmd=[
                    "ros2",
                    "bag",
                    "record",
                    "-o",
                    LaunchConfiguration("record"),
                    ["/", ns, "/masks"],
                    ["/", ns, "/landmarks"],
                    ["/", ns, "/certainty"],
                    ["/", ns, "/model_info"],
                    "/diagnostics",
                ],
                output="screen",
            ),
            ExecuteProcess(
                cmd=["ros2", "bag", "play", LaunchConfiguration("bag"), "--rate", LaunchConfiguration("rate")],
                output="screen",
            ),
        ]
    )
