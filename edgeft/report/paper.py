"""Numbers the paper publishes: kept once in :mod:`edgeft.sim.paper` (the calibration below the
report reads them too); the report's modules import them from here or from there."""

from edgeft.sim.paper import TABLE_I, TABLE_I_BENCHMARK, TABLE_I_TASKS, table_i_time

__all__ = ["TABLE_I", "TABLE_I_BENCHMARK", "TABLE_I_TASKS", "table_i_time"]
