"""edgeft: decide how foundation models are fine-tuned at the wireless network edge, and do it.

Python entry points::

    import edgeft
    scenario = edgeft.load_scenario("scenario.json")   # or a dict
    result = edgeft.schedule(scenario, "jbba")           # dict in the documented JSON form
    edgeft.SCHEMES["jbba"].label                         # the registry of schedulers
"""

from edgeft.deft.schedule import schedule, schedule_arrays
from edgeft.deft.schemes import SCHEMES, Scheme, register
from edgeft.errors import EdgeftError, InfeasibleError, InputError, ScenarioError
from edgeft.scenario import generate_scenario, load_scenario, scenario_arrays, validate_scenario

__all__ = [
    "EdgeftError",
    "InfeasibleError",
    "InputError",
    "ScenarioError",
    "SCHEMES",
    "Scheme",
    "generate_scenario",
    "load_scenario",
    "register",
    "schedule",
    "schedule_arrays",
    "scenario_arrays",
    "validate_scenario",
]

__version__ = "0.1.0"
