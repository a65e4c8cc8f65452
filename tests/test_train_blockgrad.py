"""Truncated back-propagation: exact block gradients, and costs that grow with depth (10)."""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from edgeft.errors import ScenarioError  # noqa: E402
from edgeft.train.blockgrad import (  # noqa: E402
    block_gradient,
    count_graph_nodes,
    full_gradient,
    truncated_autograd,
)
from edgeft.train.models import add_lora, build_random_model  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _batch(seed, batch_size=4, seq_len=16):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(100, 30522, (batch_size, seq_len), generator=g)
    mask = torch.ones_like(ids)
    mask[0, seq_len // 2 :] = 0  # some padding, so masks matter
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.arange(batch_size) % 2}


@pytest.fixture(scope="module")
def blocks():
    b = add_lora(build_random_model("tiny-bert", num_labels=2, seed=0))
    with torch.no_grad():  # LoRA B starts at zero, which would make every A gradient zero
        g = torch.Generator().manual_seed(1)
        for name, p in b.trainable_parameters().items():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return b


@pytest.mark.parametrize("train_mode", [False, True])
def test_block_gradient_equals_the_slice_of_full_backprop(blocks, train_mode):
    """Each truncated block gradient equals the same tensors' gradient under full
    back-propagation on the same batches (dropout masks drawn from the same seed)."""
    blocks.model.train(train_mode)
    batches = [_batch(0), _batch(1)]  # tau = 2: accumulation is the mean over micro-batches
    torch.manual_seed(7)
    full = full_gradient(blocks, batches)
    assert set(full.grads) == set(blocks.trainable_parameters())
    for depth in range(1, blocks.num_blocks + 1):
        torch.manual_seed(7)
        part = block_gradient(blocks, depth, batches)
        assert set(part.grads) == set(blocks.blocks[depth - 1])
        assert part.loss == pytest.approx(full.loss, rel=1e-6)
        assert part.num_samples == 8
        for name, g in part.grads.items():
            assert g.abs().sum() > 0, name
            torch.testing.assert_close(g, full.grads[name], rtol=1e-5, atol=1e-7)
    blocks.model.eval()


def test_accumulation_is_the_mean_of_single_batch_gradients(blocks):
    blocks.model.eval()
    b0, b1 = _batch(2), _batch(3)
    both = block_gradient(blocks, 2, [b0, b1])
    g0, g1 = block_gradient(blocks, 2, [b0]), block_gradient(blocks, 2, [b1])
    for name, g in both.grads.items():
        torch.testing.assert_close(g, (g0.grads[name] + g1.grads[name]) / 2)
    assert both.loss == pytest.approx((g0.loss + g1.loss) / 2)


def test_nothing_below_the_block_is_recorded(blocks):
    """Hidden states entering layer L-d carry no autograd history; the graph has no embedding."""
    blocks.model.eval()
    batch = _batch(4)
    for depth in range(1, blocks.num_blocks + 1):
        seen = {}
        hooks = [
            layer.register_forward_hook(
                lambda m, args, out, i=i, seen=seen: seen.__setitem__(i, _first(out).requires_grad)
            )
            for i, layer in enumerate(blocks.layers)
        ]
        try:
            with truncated_autograd(blocks, depth):
                loss = blocks.model(**batch).loss
        finally:
            for h in hooks:
                h.remove()
        cut = blocks.layer_index(depth)
        assert all(not seen[i] for i in range(cut)), (depth, seen)
        assert all(seen[i] for i in range(cut, blocks.num_layers)), (depth, seen)
        names = _graph_names(loss)
        assert not any("Embedding" in n for n in names)
    assert torch.is_grad_enabled()


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def _graph_names(tensor):
    seen, stack, names = set(), [tensor.grad_fn], []
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.append(type(node).__name__)
        stack.extend(f for f, _ in node.next_functions)
    return names


def test_memory_and_backward_work_grow_with_depth(blocks):
    """Property (10): saved activation bytes, autograd nodes and FLOPs increase with depth."""
    blocks.model.eval()
    batches = [_batch(5, batch_size=4, seq_len=32)]
    stats = [block_gradient(blocks, d, batches, measure=True) for d in range(1, 5)]
    saved = [s.saved_bytes for s in stats]
    nodes = [s.graph_nodes for s in stats]
    flops = [s.flops for s in stats]
    assert all(a < b for a, b in zip(saved, saved[1:], strict=False)), saved
    assert all(a < b for a, b in zip(nodes, nodes[1:], strict=False)), nodes
    assert all(a < b for a, b in zip(flops, flops[1:], strict=False)), flops
    # each extra layer adds about the same activation memory (linear in depth, Fig. 4)
    steps = [b - a for a, b in zip(saved[1:], saved[2:], strict=False)]
    assert max(steps) <= 1.2 * min(steps)
    full = full_gradient(blocks, batches, measure=True)
    assert full.saved_bytes >= saved[-1] and full.graph_nodes >= nodes[-1]


def test_graph_node_count_of_a_known_graph():
    x = torch.ones(3, requires_grad=True)
    y = (x * 2).sum()
    assert count_graph_nodes(y) == 3  # SumBackward, MulBackward, AccumulateGrad


def test_block_step_leaves_the_model_as_it_found_it(blocks):
    blocks.model.eval()
    before = {n: p.requires_grad for n, p in blocks.model.named_parameters()}
    block_gradient(blocks, 3, [_batch(6)])
    after = {n: p.requires_grad for n, p in blocks.model.named_parameters()}
    assert before == after
    assert all(p.grad is None for p in blocks.model.parameters())
    assert torch.is_grad_enabled()


def test_bad_depth_and_empty_batches_are_errors(blocks):
    with pytest.raises(ScenarioError, match="depth"):
        block_gradient(blocks, 0, [_batch(0)])
    with pytest.raises(ValueError, match="micro-batch"):
        block_gradient(blocks, 1, [])
