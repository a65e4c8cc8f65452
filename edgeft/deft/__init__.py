"""DEFT resource management (paper sections III-V): block allocation and bandwidth allocation.

Managers work on NumPy arrays only; they never import torch.
"""
