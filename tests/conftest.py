"""Test-wide settings."""

import os

# torch's OpenMP threads busy-wait by default; on a shared 2-core machine that makes every step
# many times slower. Passive waiting must be set before torch is first imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
