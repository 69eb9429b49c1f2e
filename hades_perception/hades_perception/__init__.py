"""Hades Perception: masks, root-tip landmarks and certainty for Hades Petri-dish images.

The core modules (pipeline, engines, store, swap) import no rclpy; only the node
module does, so the same code serves the node, the CLI, replay and tests.
"""

__version__ = "0.1.0"
