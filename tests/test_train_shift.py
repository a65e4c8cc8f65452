"""The shifted general/task split of the two-stage runs: disjoint, the sizes asked for, the
regime and label prior moving with the shift strength, clear errors."""

import numpy as np
import pytest

from edgeft.errors import InputError
from edgeft.train.data import GlueExamples
from edgeft.train.shift import shifted_split, word_counts


def _examples(n=8000, seed=0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 30, n)
    texts = [" ".join(["w"] * int(k)) for k in lengths]
    return GlueExamples("SST-2", [texts], rng.integers(0, 2, n))


@pytest.mark.parametrize("shift", [0.0, 0.3, 0.5, 1.0])
def test_the_split_is_disjoint_and_moves_with_the_shift(shift):
    ex = _examples()
    split = shifted_split(ex, shift, server_size=600, task_size=500, seed=3)
    assert split.server.size == 600 and split.task.size == 500
    assert not set(split.server) & set(split.task)
    words = word_counts(ex)
    assert np.all(words[split.task] > 8)  # the task is the long regime
    short_share = np.mean(words[split.server] <= 8)
    assert short_share == pytest.approx(shift, abs=1 / 600)
    assert np.mean(ex.labels[split.server] == 1) == pytest.approx(0.5 + 0.4 * shift, abs=2e-3)


def test_the_same_seed_gives_the_same_split_and_another_seed_another():
    ex = _examples()
    a, b = (shifted_split(ex, 0.5, 300, 300, seed=1) for _ in range(2))
    assert np.array_equal(a.server, b.server) and np.array_equal(a.task, b.task)
    assert not np.array_equal(a.task, shifted_split(ex, 0.5, 300, 300, seed=2).task)


@pytest.mark.parametrize("kwargs, field", [
    ({"shift": 1.5}, "shift"),
    ({"shift": -0.1}, "shift"),
    ({"task_size": 10**6}, "task_size"),
    ({"server_size": 10**5}, "server_size"),
    ({"server_size": 0}, "server_size"),
])
def test_bad_splits_name_the_field(kwargs, field):
    args = {"shift": 0.5, "server_size": 300, "task_size": 300} | kwargs
    with pytest.raises(InputError, match=field):
        shifted_split(_examples(), **args)


def test_a_regression_task_is_refused():
    ex = _examples()
    ex = GlueExamples("STS-B", ex.texts, ex.labels.astype(float) * 2.5)
    with pytest.raises(InputError, match="binary classification"):
        shifted_split(ex, 0.5, 100, 100)
