"""Hades Perception on ROS 2: the lifecycle node (node.py) and what it is made of
(params, messages, diagnostics, frame_monitoring, shadow, log_bridge), the image codec,
rosbag2 tools and replay, and the launcher that starts the node without `ros2 launch`.
The pure logic lives in the core package, hades_perception."""
