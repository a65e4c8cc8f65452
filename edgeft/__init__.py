"""edgeft: decide how foundation models are fine-tuned at the wireless network edge, and do it.

Python entry points::

    import edgeft
    scenario = edgeft.load_scenario("scenario.json")   # or a dict
    result = edgeft.schedule(scenario, "jbba")           # dict in the documented JSON form
"""

from edgeft.deft.schedule import SCHEMES, schedule, schedule_arrays
from edgeft.errors import EdgeftError, InfeasibleError, ScenarioError
from edgeft.scenario import generate_scenario, load_scenario, validate_scenario

__all__ = [
    "EdgeftError",
    "InfeasibleError",
    "ScenarioError",
    "SCHEMES",
    "generate_scenario",
    "load_scenario",
    "schedule",
    "schedule_arrays",
    "validate_scenario",
]

__version__ = "0.1.0"
