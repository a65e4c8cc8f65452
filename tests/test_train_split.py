"""The split model (docs/sft.md sections 1-2): same outputs and LoRA gradients as the unsplit
model, cut errors, per-layer LoRA averaging, and split-federated rounds with a lossless codec."""

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from edgeft.errors import InputError  # noqa: E402
from edgeft.train.data import BatchStream, EncodedDataset, encode, read_glue  # noqa: E402
from edgeft.train.models import (  # noqa: E402
    add_lora,
    build_random_model,
    load_classifier,
    load_tokenizer,
    use_class_weights,
    use_mean_pooling,
)
from edgeft.train.split import (  # noqa: E402
    SplitModel,
    device_adam,
    layer_of_parameters,
    split_step,
)
from edgeft.train.split_round import aggregate, average_lora, split_fed_round  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GLUE_DIR = Path(__file__).parents[1].parent / "shared/data/glue"


class LosslessCodec:
    """float32 bytes of the tensor and its shape; records every payload's length."""

    def __init__(self):
        self.sizes = []

    def encode(self, tensor, generator):
        shape = np.asarray(tensor.shape, dtype=np.int64)
        payload = np.int64(shape.size).tobytes() + shape.tobytes() + \
            tensor.detach().to(torch.float32).contiguous().numpy().tobytes()
        self.sizes.append(len(payload))
        return payload

    def decode(self, payload):
        ndim = int(np.frombuffer(payload[:8], dtype=np.int64)[0])
        shape = np.frombuffer(payload[8:8 + 8 * ndim], dtype=np.int64)
        values = np.frombuffer(payload[8 + 8 * ndim:], dtype=np.float32)
        return torch.from_numpy(values.copy().reshape(shape))


def _roberta():
    from transformers import RobertaConfig

    cfg = RobertaConfig(vocab_size=1000, hidden_size=32, num_hidden_layers=4,
                        num_attention_heads=4, intermediate_size=64, max_position_embeddings=64)
    return build_random_model(cfg, num_labels=2, seed=0)


def _blocks(kind):
    """LoRA models with non-zero B (LoRA starts at B = 0, which zeroes every A gradient)."""
    if kind == "roberta":
        model = _roberta()
    else:
        model = build_random_model("tiny-bert", num_labels=2, seed=0)
        if kind == "bert-mean-weighted":
            use_mean_pooling(model)
    blocks = add_lora(model)
    if kind == "bert-mean-weighted":
        use_class_weights(blocks.model, [0.3, 1.7])
    blocks.model.eval()  # no dropout: both computations must see the same network
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        for name, p in blocks.trainable_parameters().items():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return blocks


def _batch(kind, seed=0, batch_size=4, seq_len=12):
    g = torch.Generator().manual_seed(seed)
    high = 1000 if kind == "roberta" else 30522
    ids = torch.randint(5, high, (batch_size, seq_len), generator=g)
    mask = torch.ones_like(ids)
    mask[0, seq_len // 2:] = 0  # padding, so the attention mask and mean pooling matter
    mask[2, seq_len - 3:] = 0
    if kind == "roberta":
        ids[mask == 0] = 1  # RoBERTa's pad token (its positions depend on it)
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 1, 1, 0])}


KINDS = ["bert", "bert-mean-weighted", "roberta"]


@pytest.fixture(scope="module", params=KINDS)
def model_and_reference(request):
    """A model, a batch, and the unsplit model's logits and full back-propagation gradients."""
    blocks = _blocks(request.param)
    batch = _batch(request.param)
    out = blocks.model(**batch)
    out.loss.backward()
    grads = {n: p.grad.clone() for n, p in blocks.trainable_parameters().items()}
    for p in blocks.trainable_parameters().values():
        p.grad = None
    return blocks, batch, out.logits.detach(), float(out.loss.detach()), grads


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_split_forward_equals_the_unsplit_forward(model_and_reference, cut):
    blocks, batch, logits, loss, _ = model_and_reference
    split = SplitModel(blocks, cut)
    with torch.no_grad():
        activation = split.device_forward(batch)
        out = split.server_forward(activation, batch["attention_mask"], batch["labels"])
    assert activation.shape == (*batch["input_ids"].shape, blocks.model.config.hidden_size)
    assert torch.allclose(out.logits, logits, atol=1e-6)
    assert out.loss.item() == pytest.approx(loss, abs=1e-6)  # class weights too


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_uncompressed_split_gradients_equal_full_backprop(model_and_reference, cut):
    blocks, batch, _, loss, full = model_and_reference
    split = SplitModel(blocks, cut)
    device = split.new_device()
    up, down = LosslessCodec(), LosslessCodec()
    step = split_step(split, device, batch, up, down, torch.Generator().manual_seed(0))
    layer = layer_of_parameters(blocks)
    assert set(step.device_grads) == {n for n, i in layer.items() if i is not None and i < cut}
    assert set(step.device_grads) | set(step.server_grads) == set(full)
    assert any("classifier" in n for n in step.server_grads)  # the head is on the server
    for name, g in {**step.device_grads, **step.server_grads}.items():
        assert g.abs().max() > 0, name
        assert torch.allclose(g, full[name], rtol=1e-5, atol=1e-7), name
    assert step.loss == pytest.approx(loss, abs=1e-6)
    assert (step.up_bytes, step.down_bytes) == (up.sizes[0], down.sizes[0])
    assert step.num_samples == 4
    assert all(p.grad is None for p in blocks.trainable_parameters().values())


@pytest.mark.parametrize("cut", [0, 4, -1, 2.5, True, "2"])
def test_a_cut_outside_one_to_l_minus_one_is_a_one_line_input_error(model_and_reference, cut):
    blocks = model_and_reference[0]
    with pytest.raises(InputError) as err:
        SplitModel(blocks, cut)
    message = str(err.value)
    assert "\n" not in message and message.startswith("cut: expected 1..3")
    assert repr(cut) in message


def test_devices_share_the_frozen_model_and_swap_in_their_own_lora():
    blocks = _blocks("bert")
    batch = _batch("bert")
    split = SplitModel(blocks, 2)
    before = {n: p.detach().clone() for n, p in blocks.model.named_parameters()}
    a, b = split.new_device(), split.new_device()
    assert set(a.lora) == set(split.device_names)  # LoRA only: no copy of the base model
    assert all(p.data_ptr() != blocks.trainable_parameters()[n].data_ptr()
               for n, p in a.lora.items())
    with torch.no_grad():
        for p in b.lora.values():
            p.mul_(3.0)
    act_model = split.device_forward(batch)
    act_a, act_b = split.device_forward(batch, a.lora), split.device_forward(batch, b.lora)
    assert torch.equal(act_a, act_model) and not torch.allclose(act_a, act_b)
    # Gradients of one device's forward land in that device's tensors only.
    act_b.sum().backward()
    assert all(p.grad is not None for p in b.lora.values())
    assert all(p.grad is None for p in a.lora.values())
    assert all(p.grad is None for p in blocks.trainable_parameters().values())
    after = dict(blocks.model.named_parameters())
    assert all(torch.equal(before[n], after[n]) for n in before)  # swaps were undone
    with pytest.raises(InputError, match="cut"):
        split_step(SplitModel(blocks, 3), a, batch, LosslessCodec(), LosslessCodec())


def test_average_lora_weights_each_tensor_by_samples_over_its_holders():
    x = {"l0": torch.tensor([1.0, 2.0]), "l1": torch.tensor([10.0])}
    y = {"l0": torch.tensor([3.0, 6.0])}
    z = {"l0": torch.tensor([0.0, 0.0]), "l1": torch.tensor([40.0])}
    avg = average_lora([(x, 1), (y, 3), (z, 4)])
    assert torch.allclose(avg["l0"], torch.tensor([(1 + 9) / 8, (2 + 18) / 8]))
    assert torch.allclose(avg["l1"], torch.tensor([(10 + 160) / 5]))  # y does not hold l1
    with pytest.raises(InputError, match="weight"):
        average_lora([(x, 0)])


def test_aggregate_averages_each_layer_over_devices_and_the_server_copy():
    blocks = _blocks("bert")
    layer = layer_of_parameters(blocks)
    shallow, deep = SplitModel(blocks, 1), SplitModel(blocks, 3)
    d1, d2, d3 = shallow.new_device(), deep.new_device(), deep.new_device()
    with torch.no_grad():
        for scale, d in ((1.0, d1), (2.0, d2), (4.0, d3)):
            for p in d.lora.values():
                p.fill_(scale)
        for p in blocks.trainable_parameters().values():
            p.fill_(8.0)  # the server's copy
    averaged = aggregate(blocks, [d1, d2, d3], [10, 20, 30])
    params = blocks.trainable_parameters()
    for n, i in layer.items():
        if i == 0:  # every device holds layer 0; the server does not
            expected = (10 * 1 + 20 * 2 + 30 * 4) / 60
        elif i in (1, 2):  # the deep devices, and the server for the shallow device
            expected = (20 * 2 + 30 * 4 + 10 * 8) / 60
        else:  # layer 3 and the head: the server's alone
            assert n not in averaged and torch.all(params[n] == 8.0)
            continue
        assert torch.allclose(averaged[n], torch.full_like(averaged[n], expected)), n
        assert torch.allclose(params[n], averaged[n])
        for d in (d1, d2, d3):
            if n in d.lora:
                assert torch.equal(d.lora[n].detach(), params[n].detach())


def _synthetic(n, seq_len=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(100, 30522, (n, seq_len), generator=g)
    return EncodedDataset({"input_ids": ids, "attention_mask": torch.ones_like(ids),
                           "labels": (ids[:, 1] % 2).long()})


def test_a_round_with_unequal_cuts_steps_every_side_and_counts_bytes():
    blocks = _blocks("bert")
    data = _synthetic(24)
    cuts = [1, 3]
    devices = [SplitModel(blocks, c).new_device(device_adam(1e-2)) for c in cuts]
    streams = [BatchStream(np.arange(12 * n, 12 * (n + 1)), 4, 0, n) for n in range(2)]
    codecs = [(LosslessCodec(), LosslessCodec()) for _ in cuts]
    server = torch.optim.Adam(blocks.trainable_parameters().values(), lr=1e-2)
    before = {n: p.detach().clone() for n, p in blocks.trainable_parameters().items()}
    result = split_fed_round(blocks, devices, data, streams, codecs, server, iterations=2)
    assert result.up_bytes == [sum(up.sizes) for up, _ in codecs]
    assert result.down_bytes == [sum(down.sizes) for _, down in codecs]
    assert all(len(up.sizes) == 2 for up, _ in codecs)
    assert result.num_samples == [8, 8]
    assert result.lora_up_bytes == [4 * sum(p.numel() for p in d.lora.values()) for d in devices]
    assert np.isfinite(result.loss) and result.loss == pytest.approx(np.mean(result.device_loss))
    after = blocks.trainable_parameters()
    assert all(not torch.equal(before[n], after[n]) for n in after)  # every layer and the head
    record = result.record()
    assert set(record) >= {"loss", "up_bytes", "down_bytes", "lora_up_bytes"}


@pytest.fixture(scope="module")
def sst2():
    if not (GLUE_DIR / "SST-2" / "dev.tsv").is_file():
        pytest.skip(f"GLUE data not found at {GLUE_DIR} (needs SST-2/dev.tsv)")
    examples = read_glue("SST-2", "dev", GLUE_DIR).subset(np.arange(24))
    return encode(examples, load_tokenizer(None), max_length=32)


def test_split_federated_rounds_on_sst2_lower_the_training_loss(sst2):
    """Three MiniLM devices (cut 3 of 6), eight SST-2 sentences each, a lossless codec."""
    blocks = add_lora(load_classifier(None, num_labels=2, seed=0))
    blocks.model.eval()  # no dropout, so the loss trend is not noise

    def loss_on_all():
        with torch.no_grad():
            return float(blocks.model(**sst2.batch(np.arange(len(sst2)))).loss)

    split = SplitModel(blocks, 3)
    devices = [split.new_device(device_adam(2e-3)) for _ in range(3)]
    streams = [BatchStream(np.arange(8 * n, 8 * (n + 1)), 8, 0, n) for n in range(3)]
    codecs = [(LosslessCodec(), LosslessCodec()) for _ in range(3)]
    server = torch.optim.Adam(blocks.trainable_parameters().values(), lr=2e-3)
    start = loss_on_all()
    results = [split_fed_round(blocks, devices, sst2, streams, codecs, server, iterations=2)
               for _ in range(3)]
    end = loss_on_all()
    assert end < start - 0.01
    assert [r.up_bytes for r in results] and all(
        r.up_bytes[n] > 0 for r in results for n in range(3))
    assert sum(sum(r.up_bytes) for r in results) == sum(sum(up.sizes) for up, _ in codecs)
    assert sum(sum(r.down_bytes) for r in results) == sum(sum(d.sizes) for _, d in codecs)


def test_a_device_state_is_a_copy_not_references():
    """The loop keeps the last completed round's state while the next round steps the device's
    Adam in place; the saved state must not move with it (exact resume after a mid-round
    interrupt)."""
    blocks = _blocks("bert")
    device = SplitModel(blocks, 2).new_device(device_adam(1e-2))
    for p in device.lora.values():
        p.grad = torch.ones_like(p)
    device.optimizer.step()
    saved = device.state_dict()
    before = {k: v["exp_avg"].clone() for k, v in saved["optimizer"]["state"].items()}
    device.optimizer.step()  # the next round, in place
    assert all(torch.equal(saved["optimizer"]["state"][k]["exp_avg"], before[k]) for k in before)
