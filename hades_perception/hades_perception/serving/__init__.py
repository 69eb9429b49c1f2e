"""Serving one model to a stream of frames: the bounded inference worker and the
ServingSlot that owns the pipeline being served, its version and the swap. The ROS
node, replay and the HTTP API each hold one."""
