"""The range of every number the system model accepts: ``(min, max, unit)`` per quantity.

Wide enough for any real deployment, narrow enough that every product the schedulers form stays
finite: the SNR ``p h / N0 <= 1e40``, an upload ``D / (b s) <= 1e56`` s, a computation
``compute_s / c <= 1e15`` s. Scenario files and cost profiles are checked against these at the
door (:mod:`edgeft.scenario`, :mod:`edgeft.system.profile`); the README lists them.
"""

TOP_RANGES = {
    "bandwidth_hz": (1e3, 1e12, "Hz"),
    "payload_bits": (1.0, 1e15, "bits"),
    "noise_power_w": (1e-30, 1.0, "W"),
}
DEVICE_RANGES = {
    "compute_factor": (1e-6, 1e6, "x the reference device"),
    "memory_bytes": (1.0, 1e15, "bytes"),
    "tx_power_w": (1e-12, 1e4, "W"),
    "channel_gain": (1e-30, 1e6, ""),
}
BLOCK_RANGES = {
    "memory_bytes": (0.0, 1e15, "bytes"),
    "compute_s": (0.0, 1e9, "s"),
}
SNR_DB_RANGE = (-50.0, 100.0, "dB")  # a transmit SNR given in decibels (generator, sweeps)
MAX_DEVICES = 1_000_000  # devices in one scenario or study
MAX_BLOCKS = 1_024  # blocks (layers) of one model
MAX_SEQ_LEN = 65_536  # tokens per sequence (models hold far fewer positions)
MAX_BATCH = 1_000_000  # sequences per micro-batch, local iterations per round
