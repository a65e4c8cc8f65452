"""The runnable examples in the docstrings stay true."""

import doctest
import importlib

import pytest

MODULES = ("edgeft.deft.crunch", "edgeft.deft.ordering", "edgeft.deft.bottleneck",
           "edgeft.sim", "edgeft.sim.simulate", "edgeft.sim.paper", "edgeft.sim.paper_figures")


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0, result
