"""GLUE loading on the real TSV files, tokenisation, metrics, device shards, batch streams."""

import os
from pathlib import Path

import numpy as np
import pytest

from edgeft.errors import ScenarioError
from edgeft.train.data import (
    GLUE_DIR_ENV,
    BatchStream,
    read_glue,
    shard_indices,
    task_spec,
)
from edgeft.train.metrics import compute_metrics, correlations, f1_positive, matthews

REPO = Path(__file__).resolve().parents[1]


def _glue_dir():
    env = os.environ.get(GLUE_DIR_ENV)
    path = Path(env) if env else REPO.parent / "shared" / "data" / "glue"
    return path if (path / "SST-2").is_dir() else None


GLUE = _glue_dir()
needs_glue = pytest.mark.skipif(
    GLUE is None,
    reason=f"GLUE data not found (set {GLUE_DIR_ENV} or place it at ../shared/data/glue)",
)

# Row counts of PROVENANCE.md (header excluded).
ROWS = {
    ("CoLA", "train"): 8551, ("CoLA", "dev"): 1043, ("SST-2", "train"): 67349,
    ("SST-2", "dev"): 872, ("MRPC", "train"): 3668, ("MRPC", "dev"): 408,
    ("STS-B", "train"): 5749, ("STS-B", "dev"): 1500, ("RTE", "train"): 2490,
    ("RTE", "dev"): 277, ("WNLI", "train"): 635, ("WNLI", "dev"): 71, ("QNLI", "dev"): 5463,
}  # fmt: skip


@needs_glue
@pytest.mark.parametrize(("task", "split"), sorted(ROWS))
def test_every_split_reads_with_its_documented_row_count(task, split):
    ex = read_glue(task, split, GLUE)
    spec = task_spec(task)
    assert len(ex) == ROWS[(task, split)]
    assert len(ex.texts) == len(spec.text_columns)
    assert all(len(col) == len(ex) for col in ex.texts)
    assert all(isinstance(t, str) for t in ex.texts[0][:50])
    if spec.num_labels == 1:
        assert ex.labels.dtype == np.float32 and 0.0 <= ex.labels.min() and ex.labels.max() <= 5.0
    else:
        assert set(np.unique(ex.labels)) == {0, 1}


@needs_glue
def test_first_rows_parse_as_in_the_files():
    cola = read_glue("cola", "dev", GLUE)  # no header: the first row is data
    assert (
        cola.texts[0][0] == "The sailors rode the breeze clear of the rocks."
        and cola.labels[0] == 1
    )
    mrpc = read_glue("MRPC", "train", GLUE)  # header with a BOM
    assert mrpc.labels[0] == 1 and mrpc.texts[0][0].startswith("Amrozi accused")
    rte = read_glue("rte", "dev", GLUE)
    assert rte.labels[0] == 1  # not_entailment
    stsb = read_glue("sts-b", "dev", GLUE)
    assert stsb.labels[0] == pytest.approx(5.0) and stsb.labels[1] == pytest.approx(4.75)
    qnli = read_glue("QNLI", "dev", GLUE)
    assert qnli.texts[0][0].startswith("What came into force") and qnli.labels[0] == 0


@needs_glue
def test_rows_with_unbalanced_quotes_stay_single_rows():
    mrpc = read_glue("MRPC", "dev", GLUE)
    assert mrpc.texts[1][0].startswith('"The foodservice pie business')
    assert all("\t" not in t and "\n" not in t for col in mrpc.texts for t in col)


@needs_glue
def test_encode_gives_fixed_length_tensors():
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from edgeft.train.data import encode
    from edgeft.train.models import load_tokenizer

    tok = load_tokenizer(None)
    ex = read_glue("RTE", "dev", GLUE).subset(range(10))
    data = encode(ex, tok, max_length=48)
    assert len(data) == 10
    assert data.tensors["input_ids"].shape == (10, 48)
    assert "token_type_ids" in data.tensors  # sentence pairs get segment ids
    assert data.labels.dtype == torch.long
    batch = data.batch([3, 1])
    assert torch.equal(batch["input_ids"][0], data.tensors["input_ids"][3])
    reg = encode(read_glue("STS-B", "dev", GLUE).subset(range(4)), tok, max_length=16)
    assert reg.labels.dtype == torch.float32


def test_unknown_task_is_a_one_line_error():
    with pytest.raises(ScenarioError, match="task") as err:
        read_glue("MNLI-X", "train", "/tmp")
    assert err.value.exit_code == 2 and "SST-2" in str(err.value)


def test_directory_without_the_task_names_it(tmp_path):
    with pytest.raises(ScenarioError) as err:
        read_glue("SST-2", "train", tmp_path)
    assert "SST-2/train.tsv" in str(err.value) and str(tmp_path) in str(err.value)


def test_qnli_has_no_training_split():
    with pytest.raises(ScenarioError, match="split"):
        read_glue("QNLI", "train", "/tmp")


def test_no_directory_falls_back_to_datasets_only_when_downloads_are_allowed(monkeypatch):
    monkeypatch.delenv(GLUE_DIR_ENV, raising=False)
    monkeypatch.delenv("EDGEFT_ALLOW_DOWNLOADS", raising=False)
    with pytest.raises(ScenarioError, match="EDGEFT_ALLOW_DOWNLOADS=1") as info:
        read_glue("SST-2", "dev")  # no network is tried: nothing downloads unasked
    assert "missing" in str(info.value)
    monkeypatch.setenv("EDGEFT_ALLOW_DOWNLOADS", "1")
    try:
        import datasets  # noqa: F401
    except ImportError:
        with pytest.raises(ScenarioError, match="datasets"):
            read_glue("SST-2", "dev")
    else:  # pragma: no cover - datasets installed: the fallback would try the network
        pytest.skip("datasets installed; the fallback would try the network")


def test_task_names_are_normalised():
    assert task_spec("sst2").name == task_spec("SST-2").name == "SST-2"
    assert task_spec("stsb").num_labels == 1
    assert task_spec("cola").metric == "matthews"


# -- metrics ------------------------------------------------------------------------------


def test_metric_values_on_known_cases():
    labels = np.array([1, 1, 1, 0, 0, 0, 1, 0])
    pred = np.array([1, 1, 0, 0, 0, 1, 1, 0])
    tp, tn, fp, fn = 3, 3, 1, 1
    assert f1_positive(pred, labels) == pytest.approx(2 * tp / (2 * tp + fp + fn))
    mcc = (tp * tn - fp * fn) / np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert matthews(pred, labels) == pytest.approx(mcc)
    assert matthews(np.ones(8), labels) == 0.0
    assert matthews(labels, labels) == pytest.approx(1.0)
    c = correlations([1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 9.0])
    assert c["spearman"] == pytest.approx(1.0) and 0.95 < c["pearson"] < 1.0


def test_compute_metrics_uses_each_tasks_metric():
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    labels = np.array([1, 0, 0, 0])
    assert set(compute_metrics("MRPC", logits, labels)) == {"accuracy", "f1"}
    assert set(compute_metrics("CoLA", logits, labels)) == {"accuracy", "matthews"}
    assert compute_metrics("SST-2", logits, labels) == {"accuracy": 0.75}
    reg = compute_metrics("STS-B", np.array([[0.5], [1.0], [3.0]]), np.array([1.0, 2.0, 4.0]))
    assert set(reg) == {"pearson", "spearman"} and reg["spearman"] == pytest.approx(1.0)


def test_constant_baseline_is_the_input_blind_predictors_score():
    from edgeft.train.metrics import constant_baseline

    train, dev = np.array([1, 1, 1, 0]), np.array([1, 1, 0, 0, 0])
    assert constant_baseline("SST-2", train, dev) == pytest.approx(0.4)  # always 1
    assert constant_baseline("MRPC", train, dev) == pytest.approx(2 * 2 / (2 * 2 + 3))
    assert constant_baseline("CoLA", train, dev) == 0.0
    assert constant_baseline("STS-B", np.array([1.0, 3.0]), np.array([0.5, 4.0, 2.0])) == 0.0


@needs_glue
def test_mrpc_f1_of_always_paraphrase_is_081_on_the_real_dev_set():
    """Why Table I flags MRPC: F1 of the majority class (paraphrase) is already 0.81."""
    from edgeft.train.metrics import constant_baseline

    train, dev = read_glue("MRPC", "train", GLUE), read_glue("MRPC", "dev", GLUE)
    assert constant_baseline("MRPC", train.labels, dev.labels) == pytest.approx(0.8122, abs=1e-4)


# -- shards and streams -------------------------------------------------------------------


def _is_partition(shards, n):
    joined = np.concatenate(shards)
    return joined.size == n and np.array_equal(np.sort(joined), np.arange(n))


def test_iid_shards_partition_evenly_and_are_seeded():
    labels = np.arange(103) % 2
    shards = shard_indices(labels, 10, seed=1)
    assert _is_partition(shards, 103)
    assert {s.size for s in shards} == {10, 11}
    again = shard_indices(labels, 10, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(shards, again, strict=True))
    other = shard_indices(labels, 10, seed=2)
    assert not all(np.array_equal(a, b) for a, b in zip(shards, other, strict=True))


def _label_skew(shards, labels):
    """Mean total-variation distance between device label distributions and the global one."""
    classes = np.unique(labels)
    glob = np.array([np.mean(labels == c) for c in classes])
    dists = [np.array([np.mean(labels[s] == c) for c in classes]) for s in shards]
    return float(np.mean([0.5 * np.abs(d - glob).sum() for d in dists]))


def test_dirichlet_shards_are_partitions_with_skew_falling_in_alpha():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 2000)
    skew = {}
    for alpha in (0.1, 1.0, 100.0):
        shards = shard_indices(labels, 8, alpha=alpha, seed=3, min_size=5)
        assert _is_partition(shards, labels.size)
        assert min(s.size for s in shards) >= 5
        skew[alpha] = _label_skew(shards, labels)
    assert skew[0.1] > skew[1.0] > skew[100.0]
    assert skew[100.0] < 0.05 < skew[0.1]


@needs_glue
def test_dirichlet_shards_of_stsb_bin_the_scores():
    labels = read_glue("STS-B", "train", GLUE).labels
    shards = shard_indices(labels, 5, alpha=0.2, seed=0)
    assert _is_partition(shards, labels.size)
    means = [float(labels[s].mean()) for s in shards]
    assert max(means) - min(means) > 0.5  # skewed in score, not only in size


def test_shard_errors():
    with pytest.raises(ScenarioError, match="num_devices"):
        shard_indices(np.zeros(3), 4)
    with pytest.raises(ScenarioError, match="alpha"):
        shard_indices(np.zeros(30), 3, alpha=0.0)
    with pytest.raises(ScenarioError, match="alpha"):
        shard_indices(np.arange(40) % 2, 20, alpha=0.01, min_size=2, max_tries=3)


def test_batch_stream_visits_each_example_once_per_epoch_and_resumes():
    idx = np.arange(10, 20)
    s = BatchStream(idx, batch_size=4, seed=0, stream_id=3)
    first_epoch = np.concatenate([s.next_indices() for _ in range(2)] + [s.next_indices()[:2]])
    assert np.array_equal(np.sort(first_epoch), idx)
    state = s.state()
    ahead = [s.next_indices() for _ in range(5)]
    t = BatchStream(idx, batch_size=4, seed=0, stream_id=3)
    t.load_state(state)
    assert all(np.array_equal(a, t.next_indices()) for a in ahead)
    u = BatchStream(idx, batch_size=4, seed=0, stream_id=4)
    assert not np.array_equal(BatchStream(idx, 4, 0, 3).next_indices(), u.next_indices())


def test_batch_stream_smaller_than_a_batch_wraps():
    s = BatchStream(np.array([7, 8]), batch_size=5)
    assert sorted(s.next_indices().tolist()).count(7) >= 2
    with pytest.raises(ScenarioError):
        BatchStream(np.array([], dtype=int), batch_size=2)


def test_balanced_class_weights_give_every_class_the_same_total_weight():
    from edgeft.train.data import balanced_class_weights

    labels = np.array([1] * 7 + [0] * 3)
    w = balanced_class_weights(labels)
    assert w == pytest.approx([10 / 6, 10 / 14])
    assert w[0] * 3 == pytest.approx(w[1] * 7)
    with pytest.raises(ScenarioError, match="class_weights"):
        balanced_class_weights(np.array([0.5, 4.0]))  # regression (STS-B)
    with pytest.raises(ScenarioError, match="class_weights"):
        balanced_class_weights(np.array([1, 1, 2]))  # class 0 absent
