"""Hades Perception training: synthetic plates, dataset readers, training, evaluation, export.

Shares only the model bundle contract with the node (hades_perception.contract.bundle).
"""

__version__ = "0.1.0"
