"""The two-stage bound's constants measured on a real (tiny, random) model: the gradient and
variance estimators against per-example autograd, smoothness leaves the weights untouched,
and the shift measures vanish when the two objectives are the same data."""

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from edgeft.train.bound_constants import measure_shift, sample_gradient, smoothness  # noqa: E402
from edgeft.train.data import encode, read_glue  # noqa: E402
from edgeft.train.models import add_lora, build_random_model, load_tokenizer  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GLUE_DIR = Path(__file__).parents[1].parent / "shared/data/glue"


@pytest.fixture(scope="module")
def data():
    if not (GLUE_DIR / "SST-2" / "dev.tsv").is_file():
        pytest.skip(f"GLUE data not found at {GLUE_DIR} (needs SST-2/dev.tsv)")
    examples = read_glue("SST-2", "dev", GLUE_DIR).subset(np.arange(24))
    return encode(examples, load_tokenizer(None), max_length=16)


@pytest.fixture()
def blocks():
    blocks = add_lora(build_random_model("tiny-bert", num_labels=2, seed=0))
    with torch.no_grad():
        for name, p in blocks.trainable_parameters().items():
            if "lora_B" in name:
                p.normal_(0.0, 0.05, generator=torch.Generator().manual_seed(len(name)))
    return blocks


def _per_example(blocks, data, indices):
    blocks.model.eval()
    params = blocks.trainable_parameters()
    out = []
    for i in indices:
        loss = blocks.model(**data.batch(np.array([i]))).loss
        grads = torch.autograd.grad(loss, list(params.values()))
        out.append(torch.cat([g.reshape(-1).double() for g in grads]))
    return torch.stack(out)


def test_gradient_and_variance_match_per_example_autograd(blocks, data):
    idx = np.arange(12)
    per = _per_example(blocks, data, idx)
    one = sample_gradient(blocks, data, idx, batch_size=1)
    assert torch.allclose(one.grad, per.mean(0), rtol=1e-4, atol=1e-7)
    spread = float(((per - per.mean(0)) ** 2).sum(1).sum()) / (len(idx) - 1)
    assert one.variance == pytest.approx(spread, rel=1e-4)
    four = sample_gradient(blocks, data, idx, batch_size=4)  # same mean from micro-batches
    assert torch.allclose(four.grad, per.mean(0), rtol=1e-4, atol=1e-7)
    assert four.num_examples == 12 and np.isfinite(four.variance) and four.variance > 0


def test_smoothness_is_positive_and_restores_the_weights(blocks, data):
    before = {n: p.detach().clone() for n, p in blocks.trainable_parameters().items()}
    lip = smoothness(blocks, data, np.arange(8), batch_size=4, radius=1e-2, directions=2)
    assert np.isfinite(lip) and lip > 0
    for n, p in blocks.trainable_parameters().items():
        assert torch.equal(p, before[n])
    # A larger radius over the same directions sees (about) the same curvature scale.
    far = smoothness(blocks, data, np.arange(8), batch_size=4, radius=2e-2, directions=2)
    assert 0.2 < far / lip < 5


def test_the_shift_vanishes_when_server_and_devices_hold_the_same_data(blocks, data):
    same = measure_shift(blocks, data, np.arange(16), [np.arange(16)], batch_size=4)
    assert same.loss_gap == pytest.approx(0.0, abs=1e-9)
    assert same.grad_dissimilarity == pytest.approx(0.0, abs=1e-12)
    assert same.heterogeneity == pytest.approx(0.0, abs=1e-12)
    other = measure_shift(blocks, data, np.arange(16), [np.arange(16, 20), np.arange(20, 24)],
                          batch_size=4)
    assert other.grad_dissimilarity > 0 and other.heterogeneity > 0
    assert other.pl_ratio == pytest.approx(other.general_grad_sq / (2 * other.general_loss))
