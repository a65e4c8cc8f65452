"""DEFT resource management (paper sections III-V): block allocation and bandwidth allocation.

Every scheduler is registered once in :mod:`edgeft.deft.schemes`; :mod:`edgeft.deft.schedule`
runs any of them. Managers work on NumPy arrays only; they never import torch.
"""
