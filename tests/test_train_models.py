"""LoRA models cut into depth blocks: block membership, head placement, payloads, errors."""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from edgeft.errors import EdgeftError, ScenarioError  # noqa: E402
from edgeft.train.models import (  # noqa: E402
    add_lora,
    build_random_model,
    default_model_dir,
    load_classifier,
    load_tokenizer,
    random_config,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny():
    return add_lora(build_random_model("tiny-bert", num_labels=2, seed=0))


def test_depth_one_is_the_last_layer_and_carries_the_head(tiny):
    assert tiny.num_layers == tiny.num_blocks == 4
    for depth in range(1, 5):
        layer = tiny.num_layers - depth
        names = list(tiny.blocks[depth - 1])
        lora = [n for n in names if "lora_" in n]
        assert len(lora) == 4  # A and B of query and value
        assert all(f".layer.{layer}." in n for n in lora)
        head = [n for n in names if "lora_" not in n]
        assert bool(head) == (depth == 1)
    head = [n for n in tiny.blocks[0] if "lora_" not in n]
    assert any("classifier" in n for n in head) and not any("pooler" in n for n in head)
    with_pooler = add_lora(build_random_model("tiny-bert", num_labels=2, seed=0), train_pooler=True)
    head = [n for n in with_pooler.blocks[0] if "lora_" not in n]
    assert any("classifier" in n for n in head) and any("pooler" in n for n in head)


def test_only_blocks_train_and_every_trainable_tensor_is_in_one_block(tiny):
    trainable = {n for n, p in tiny.model.named_parameters() if p.requires_grad}
    in_blocks = [n for b in tiny.blocks for n in b]
    assert len(in_blocks) == len(set(in_blocks))
    assert trainable == set(in_blocks)
    assert tiny.layer_index(1) == 3 and tiny.layer_index(4) == 0


def test_payload_bits_per_depth(tiny):
    h, r = 32, 8
    lora_bits = 2 * 2 * r * h * 32
    head_params = h * 2 + 2  # classifier (the pooler stays frozen)
    assert tiny.lora_payload_bits() == lora_bits
    assert tiny.payload_bits() == [lora_bits + head_params * 32] + [lora_bits] * 3


def test_fewer_blocks_than_layers_put_lora_on_the_top_layers():
    blocks = add_lora(build_random_model("tiny-bert", seed=0), num_blocks=2)
    assert blocks.num_blocks == 2
    assert all(".layer.3." in n for n in blocks.blocks[0] if "lora_" in n)
    assert all(".layer.2." in n for n in blocks.blocks[1] if "lora_" in n)
    lora_layers = {
        n.split(".layer.")[1].split(".")[0]
        for n, _ in blocks.model.named_parameters()
        if "lora_" in n
    }
    assert lora_layers == {"2", "3"}


def test_roberta_base_block_payload_is_the_papers_d():
    model = build_random_model(random_config("roberta-base"), num_labels=2, seed=0)
    blocks = add_lora(model)
    assert blocks.num_blocks == 12
    assert blocks.lora_payload_bits() == 24_576 * 32  # paper VI-A1


def test_state_dict_round_trip(tiny):
    state = tiny.state_dict()
    with torch.no_grad():
        for p in tiny.trainable_parameters().values():
            p.add_(1.0)
    tiny.load_state_dict(state)
    for n, p in tiny.trainable_parameters().items():
        assert torch.equal(p, state[n])


def test_default_model_is_minilm_with_six_layers():
    model = load_classifier(None, num_labels=1, seed=0)
    assert model.config.num_hidden_layers == 6 and model.config.hidden_size == 384
    assert model.config.problem_type == "regression"
    blocks = add_lora(model)
    assert blocks.lora_payload_bits() == 2 * 2 * 8 * 384 * 32
    tok = load_tokenizer(None)
    assert tok("hello world")["input_ids"][0] == tok.cls_token_id
    assert default_model_dir().endswith("model")


def test_loading_a_path_gives_the_same_weights_as_the_default():
    a = load_classifier(default_model_dir(), seed=3)
    b = load_classifier(None, seed=3)
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert na == nb and torch.equal(pa, pb)


@pytest.mark.parametrize("path", ["/no/such/model", "./missing-model-dir", "a/b/c"])
def test_unknown_model_path_is_a_one_line_error(path):
    with pytest.raises(ScenarioError) as err:
        load_classifier(path)
    assert err.value.exit_code == 2 and "model" in str(err.value) and "\n" not in str(err.value)


def test_directory_without_a_model_is_an_error(tmp_path):
    with pytest.raises(ScenarioError, match="model"):
        load_classifier(str(tmp_path))


def test_unknown_random_config_is_an_error():
    with pytest.raises(ScenarioError, match="random:"):
        load_classifier("random:gpt-17")


def test_more_blocks_than_layers_is_an_error():
    with pytest.raises(ScenarioError, match="num_blocks") as err:
        add_lora(build_random_model("tiny-bert"), num_blocks=5)
    assert isinstance(err.value, EdgeftError) and err.value.exit_code == 2
    assert "4 layers" in str(err.value)


def test_lora_on_every_linear_layer_stays_in_the_layers_and_scales_the_payload():
    blocks = add_lora(build_random_model("tiny-bert", num_labels=2, seed=0), r=4,
                      target_modules=("query", "key", "value", "dense"))
    for depth in range(1, 5):
        lora = [n for n in blocks.blocks[depth - 1] if "lora_" in n]
        # q, k, v, attention output, intermediate, output: six linear layers, A and B each
        assert len(lora) == 12
        assert all(f".layer.{blocks.num_layers - depth}." in n for n in lora)
    assert not any("pooler" in n and "lora_" in n for n, _ in blocks.model.named_parameters())
    h, ffn, r = 32, 64, 4
    lora_params = 4 * r * (h + h) + r * (h + ffn) + r * (ffn + h)
    assert blocks.lora_payload_bits() == lora_params * 32


@pytest.mark.parametrize("kwargs, field", [({"target_modules": ("nope",)}, "target_modules"),
                                           ({"r": 0}, "r")])
def test_bad_lora_options_are_one_line_errors(kwargs, field):
    with pytest.raises(ScenarioError) as err:
        add_lora(build_random_model("tiny-bert", seed=0), **kwargs)
    assert str(err.value).startswith(f"{field}: ") and "\n" not in str(err.value)


def test_bad_depth_is_an_error(tiny):
    with pytest.raises(ScenarioError, match="depth"):
        tiny.layer_index(0)
    with pytest.raises(ScenarioError, match="depth"):
        tiny.layer_index(5)


def test_evaluation_in_length_order_gives_the_dataset_order_outputs(tiny):
    """evaluate() batches by length; each output goes back to its own example: with labels set
    to the in-order predictions, accuracy is exactly 1."""
    import numpy as np

    from edgeft.train.data import EncodedDataset
    from edgeft.train.metrics import evaluate

    gen = torch.Generator().manual_seed(0)
    n, length = 37, 24
    lengths = torch.randint(2, length + 1, (n,), generator=gen)
    mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
    ids = torch.randint(5, 100, (n, length), generator=gen) * mask
    model = tiny.model
    model.eval()
    with torch.no_grad():
        logits = np.concatenate([
            model(input_ids=ids[i:i + 8], attention_mask=mask[i:i + 8]).logits.numpy()
            for i in range(0, n, 8)])
    labels = torch.as_tensor(logits.argmax(1))
    assert 0 < float(labels.float().mean()) < 1  # both classes: a misplacement would show
    data = EncodedDataset({"input_ids": ids, "attention_mask": mask, "labels": labels})
    assert evaluate(model, data, "SST-2", batch_size=8)["accuracy"] == 1.0


def test_mean_pooling_feeds_the_head_the_masked_mean_and_ignores_padding():
    from edgeft.train.models import MaskedMeanPooler

    blocks = add_lora(load_classifier("random:tiny-bert", num_labels=2, seed=0, pooling="mean"))
    model = blocks.model
    model.eval()
    assert not any(p.numel() for p in MaskedMeanPooler().parameters())
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 100, (3, 10), generator=gen)
    mask = torch.ones(3, 10, dtype=torch.long)
    mask[0, 6:], mask[1, 3:] = 0, 0
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        last = out.hidden_states[-1]
        expected = torch.stack([last[i, mask[i].bool()].mean(0) for i in range(3)])
        head = model.base_model.model.classifier
        assert torch.allclose(out.logits, head(expected), atol=1e-5)
        # more trailing padding (masked out) leaves every output as it was
        ids2 = torch.cat([ids, torch.zeros(3, 4, dtype=torch.long)], dim=1)
        mask2 = torch.cat([mask, torch.zeros(3, 4, dtype=torch.long)], dim=1)
        assert torch.allclose(model(input_ids=ids2, attention_mask=mask2).logits, out.logits,
                              atol=1e-5)
    # the default keeps the model's own pooler, and bad values are one-line errors
    assert type(load_classifier("random:tiny-bert").bert.pooler).__name__ == "BertPooler"
    with pytest.raises(ScenarioError, match="pooling"):
        load_classifier("random:tiny-bert", pooling="max")


def test_class_weights_make_the_wrapped_model_s_loss_the_weighted_cross_entropy():
    import torch.nn.functional as F

    from edgeft.train.models import use_class_weights

    blocks = add_lora(load_classifier("random:tiny-bert", num_labels=2, seed=0))
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(100, 1000, (6, 8), generator=g)
    labels = torch.tensor([0, 1, 1, 1, 1, 1])
    blocks.model.eval()
    plain = blocks.model(input_ids=ids, labels=labels)
    use_class_weights(blocks.model, [3.0, 0.6])
    weighted = blocks.model(input_ids=ids, labels=labels)
    expected = F.cross_entropy(weighted.logits, labels, weight=torch.tensor([3.0, 0.6]))
    assert torch.allclose(weighted.loss, expected)
    assert not torch.allclose(weighted.loss, plain.loss)  # the hook did change the loss
    weighted.loss.backward()  # and gradients flow through it
    assert any(p.grad is not None for p in blocks.trainable_parameters().values())
