"""The DS2 network: shapes and lengths for every layer type, independence of batch and padding,
and the batch-norm fold against an explicit BN(Wx) reference."""
import copy

import pytest
import torch
from torch import nn

from ds2cli.model import BatchNormRNN, ConvLayer, DeepSpeech2, ModelConfig, time_mask

torch.set_num_threads(1)


def small_config(**kw) -> ModelConfig:
    base = dict(conv_type="2d", conv=[ConvLayer(4, (11, 5), (2, 2)), ConvLayer(4, (5, 3), (2, 1))],
                rnn_type="gru", rnn_layers=2, rnn_hidden=16, bidirectional=True, n_bins=40)
    base.update(kw)
    return ModelConfig(**base)


def _model(cfg: ModelConfig, vocab: int = 7) -> DeepSpeech2:
    torch.manual_seed(0)
    return DeepSpeech2(cfg, vocab)


@pytest.mark.parametrize("kw", [
    dict(rnn_type="rnn"), dict(rnn_type="gru"), dict(rnn_type="lstm"),
    dict(conv_type="1d", conv=[ConvLayer(12, (1, 5), (1, 3))]),
    dict(bidirectional=False, lookahead=3), dict(batch_norm=False), dict(fc_hidden=[24]),
])
def test_every_layer_type_trains(kw):
    model = _model(small_config(**kw)).train()
    lengths = torch.tensor([37, 50, 21])
    logits, out_lengths = model(torch.randn(3, 50, 40), lengths)
    assert torch.equal(out_lengths, model.output_lengths(lengths))
    assert logits.shape == (3, int(out_lengths.max()), 7)
    loss = torch.nn.functional.ctc_loss(logits.log_softmax(-1).transpose(0, 1), torch.tensor([1, 2, 3, 1, 2, 3]),
                                        out_lengths, torch.tensor([2, 2, 2]))
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


def test_output_lengths_follow_the_time_strides():
    model = _model(small_config(conv=[ConvLayer(4, (11, 5), (2, 2)), ConvLayer(4, (5, 3), (2, 3))]))
    lengths = torch.arange(1, 40)
    expected = (((lengths - 1) // 2 + 1) - 1) // 3 + 1  # padding k//2 keeps "same"-style lengths
    assert torch.equal(model.output_lengths(lengths), expected)
    assert model.time_stride == 6


@pytest.mark.parametrize("rnn_type", ["gru", "lstm"])
def test_batch_independence_in_eval(rnn_type):
    """An utterance's output does not depend on the other utterances in the batch."""
    model = _model(small_config(rnn_type=rnn_type))
    model.train()
    model(torch.randn(4, 60, 40), torch.tensor([60, 44, 30, 52]))  # move the running statistics
    model.eval()
    x = torch.randn(3, 60, 40)
    lengths = torch.tensor([60, 33, 47])
    together, out_len = model(x, lengths)
    for i in range(3):
        alone, n = model(x[i:i + 1, : lengths[i]], lengths[i:i + 1])
        assert torch.allclose(alone[0, : n[0]], together[i, : out_len[i]], atol=1e-5)


def test_padding_independence_in_training():
    """Extra padding (and garbage in it) changes neither outputs nor batch-norm statistics."""
    model = _model(small_config())
    x = torch.randn(2, 40, 40)
    lengths = torch.tensor([40, 25])
    padded = torch.cat([x, 100 * torch.randn(2, 17, 40)], dim=1)
    padded[1, 25:] = 50.0
    model.train()
    a, la = model(x, lengths)
    running = [b.running_mean.clone() for b in model.modules() if hasattr(b, "running_mean")]
    model2 = _model(small_config()).train()
    b, lb = model2(padded, lengths)
    running2 = [m.running_mean.clone() for m in model2.modules() if hasattr(m, "running_mean")]
    assert torch.equal(la, lb)
    for i in range(2):
        assert torch.allclose(a[i, : la[i]], b[i, : lb[i]], atol=1e-4)
    for r1, r2 in zip(running, running2):
        assert torch.allclose(r1, r2, atol=1e-4)


@pytest.mark.parametrize("rnn_type,bidirectional", [("gru", True), ("lstm", False), ("rnn", True)])
def test_batchnorm_fold_equals_explicit_bn_of_projection(rnn_type, bidirectional):
    """h_t = f(BN(W x_t) + U h_{t-1}) computed explicitly (masked batch statistics of W x) equals
    the layer's fused kernel with BN folded into its input weights."""
    torch.manual_seed(1)
    d, h = 6, 5
    layer = BatchNormRNN(d, h, rnn_type, bidirectional, batch_norm=True).train()
    with torch.no_grad():
        for g in layer.gamma:
            g.uniform_(0.5, 1.5)
    x = torch.randn(3, 9, d) * 2 + 1
    lengths = torch.tensor([9, 4, 7])
    mask = time_mask(lengths, 9)
    out = layer(x, lengths, mask) * mask[..., None]

    # reference: explicit BN of each direction's projection, fed to an RNN whose input weights
    # only select that direction's normalised projection
    gates = BatchNormRNN.GATES[rnn_type] * h
    ys = []
    for i, sfx in enumerate(layer.suffixes):
        w = getattr(layer.rnn, "weight_ih" + sfx)
        b = getattr(layer.rnn, "bias_ih" + sfx)
        proj = x @ w.T  # (B, T, G)
        real = proj[mask]  # (N, G) real frames only
        mean, var = real.mean(0), real.var(0, unbiased=False)
        ys.append((proj - mean) / torch.sqrt(var + 1e-5) * layer.gamma[i] + b)
    y = torch.cat(ys, -1)  # (B, T, G * directions)
    cls = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[rnn_type]
    kwargs = {"nonlinearity": "relu"} if rnn_type == "rnn" else {}
    ref = cls(y.shape[-1], h, batch_first=True, bidirectional=bidirectional, **kwargs)
    with torch.no_grad():
        for i, sfx in enumerate(layer.suffixes):
            sel = torch.zeros(gates, y.shape[-1])
            sel[:, i * gates:(i + 1) * gates] = torch.eye(gates)
            getattr(ref, "weight_ih" + sfx).copy_(sel)
            getattr(ref, "bias_ih" + sfx).zero_()
            getattr(ref, "weight_hh" + sfx).copy_(getattr(layer.rnn, "weight_hh" + sfx))
            getattr(ref, "bias_hh" + sfx).copy_(getattr(layer.rnn, "bias_hh" + sfx))
    packed = nn.utils.rnn.pack_padded_sequence(y, lengths, batch_first=True, enforce_sorted=False)
    r, _ = ref(packed)
    r, _ = nn.utils.rnn.pad_packed_sequence(r, batch_first=True, total_length=9)
    if bidirectional:
        r = r[..., :h] + r[..., h:]
    assert torch.allclose(out, r * mask[..., None], atol=1e-5)

    # running statistics move towards the batch statistics of W x (unbiased variance)
    w = layer.rnn.weight_ih_l0
    real = (x @ w.T)[mask]
    assert torch.allclose(layer.bn[0].running_mean, 0.1 * real.mean(0), atol=1e-5)
    assert torch.allclose(layer.bn[0].running_var, 0.9 + 0.1 * real.var(0, unbiased=True), atol=1e-4)


def test_config_round_trip_and_validation():
    cfg = small_config(fc_hidden=[8])
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown model option"):
        ModelConfig.from_dict({**cfg.to_dict(), "hidden": 3})
    with pytest.raises(ValueError, match="lookahead"):
        small_config(lookahead=2, bidirectional=True)
    with pytest.raises(ValueError, match="odd"):
        small_config(conv=[ConvLayer(4, (5, 4), (2, 2))])


@pytest.mark.parametrize("rnn_type", ["rnn", "gru", "lstm"])
def test_padded_cpu_path_equals_packed_path(rnn_type):
    """The CPU's padded, per-utterance-reversed path gives the packed path's outputs and gradients."""
    torch.manual_seed(2)
    layer = BatchNormRNN(6, 5, rnn_type, bidirectional=True, batch_norm=True).train()
    x = torch.randn(3, 11, 6, requires_grad=True)
    lengths = torch.tensor([11, 4, 8])
    mask = time_mask(lengths, 11)[..., None]
    results = []
    layer.gru_recurrence_on_cpu = False  # compare torch's own GRU on both paths
    for padded in (True, False):
        layer.padded_on_cpu = padded
        out = layer(x, lengths, mask[..., 0]) * mask
        grad, = torch.autograd.grad((out * torch.linspace(-1, 1, 5)).sum(), x)
        results.append((out, grad))
    assert torch.allclose(results[0][0], results[1][0], atol=1e-5)
    assert torch.allclose(results[0][1], results[1][1], atol=1e-5)


@pytest.mark.parametrize("bidirectional,batch_norm", [(True, True), (False, True), (True, False)])
def test_gru_recurrence_path_equals_torch_gru(bidirectional, batch_norm):
    """GRU training on the CPU through ds2cli.recurrence (batch norm on the explicit projection)
    gives torch's packed GRU path's outputs, gradients and running statistics."""
    torch.manual_seed(3)
    reference = BatchNormRNN(6, 5, "gru", bidirectional, batch_norm).train()
    if batch_norm:
        with torch.no_grad():
            for g in reference.gamma:
                g.uniform_(0.5, 1.5)
    fast = copy.deepcopy(reference)
    reference.gru_recurrence_on_cpu, reference.padded_on_cpu = False, False
    x = torch.randn(3, 11, 6) * 2 + 1
    lengths = torch.tensor([11, 4, 8])
    mask = time_mask(lengths, 11)
    results = []
    for layer in (fast, reference):
        xg = x.clone().requires_grad_()
        out = layer(xg, lengths, mask) * mask[..., None]
        grads = torch.autograd.grad((out * torch.linspace(-1, 1, 5)).sum(), [xg, *layer.parameters()])
        results.append((out, grads, [b.clone() for b in layer.buffers()]))
    (out_f, grads_f, buf_f), (out_r, grads_r, buf_r) = results
    assert torch.allclose(out_f, out_r, atol=1e-5)
    assert len(grads_f) == len(grads_r)
    for gf, gr in zip(grads_f, grads_r):
        assert torch.allclose(gf, gr, atol=1e-5)
    for bf, br in zip(buf_f, buf_r):
        assert torch.allclose(bf, br, atol=1e-5)


@pytest.mark.parametrize("rnn_type", ["gru", "lstm"])
def test_recurrent_layers_run_in_fp32_under_cpu_bf16_autocast(rnn_type):
    """bf16 inference on the CPU: convolutions and FC layers take bf16, the recurrences stay in
    fp32 (torch's CPU RNN under bf16 autocast converts at every time step: 5x slower)."""
    torch.manual_seed(0)
    layer = BatchNormRNN(6, 5, rnn_type, True, True).eval()
    x = torch.randn(2, 7, 6)
    lengths = torch.tensor([7, 4])
    mask = time_mask(lengths, 7)
    with torch.no_grad():
        reference = layer(x, lengths, mask)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = layer(x.bfloat16(), lengths, mask)
        rounded_input = layer(x.bfloat16().float(), lengths, mask)
    assert out.dtype == torch.float32
    assert torch.allclose(out, rounded_input)  # only the input was rounded
    assert torch.allclose(out, reference, atol=0.05)
