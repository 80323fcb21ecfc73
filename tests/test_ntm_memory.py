"""NTM addressing, read/write and the models, against plain per-row reference code."""
import pytest
import torch
import torch.nn.functional as F

from ds2cli.errors import DS2Error
from ds2cli.ntm import memory as mem
from ds2cli.ntm.machine import LSTMBaseline, NTMConfig, NTM, build_machine

B, H, N, M = 2, 3, 10, 5


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


def rand_weights(gen, *shape):
    return torch.softmax(torch.randn(*shape, generator=gen) * 2, dim=-1)


def test_content_weights_match_cosine_softmax_over_rows(gen):
    memory = torch.randn(B, N, M, generator=gen)
    keys = torch.randn(B, H, M, generator=gen)
    beta = torch.rand(B, H, 1, generator=gen) * 5
    w = mem.content_weights(memory, keys, beta)
    ref = torch.empty(B, H, N)
    for b in range(B):
        for h in range(H):
            sims = torch.stack([F.cosine_similarity(keys[b, h], memory[b, i], dim=0) for i in range(N)])
            ref[b, h] = torch.softmax(beta[b, h] * sims, dim=0)  # over the N rows
    torch.testing.assert_close(w, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(w.sum(-1), torch.ones(B, H))


def test_content_weights_pick_the_matching_row(gen):
    memory = torch.randn(1, N, M, generator=gen)
    keys = memory[:, 7:8] * 3.0  # same direction as row 7, different length
    w = mem.content_weights(memory, keys, torch.full((1, 1, 1), 50.0))
    assert w.argmax().item() == 7 and w[0, 0, 7] > 0.9


def test_content_weights_finite_on_zero_memory_and_key():
    memory = torch.zeros(1, N, M, requires_grad=True)
    keys = torch.zeros(1, 1, M, requires_grad=True)
    w = mem.content_weights(memory, keys, torch.ones(1, 1, 1))
    (w * torch.arange(N)).sum().backward()
    assert torch.isfinite(w).all() and torch.isfinite(memory.grad).all() and torch.isfinite(keys.grad).all()
    torch.testing.assert_close(w, torch.full((1, 1, N), 1.0 / N))


def test_interpolate(gen):
    wc, wp = rand_weights(gen, B, H, N), rand_weights(gen, B, H, N)
    g = torch.rand(B, H, 1, generator=gen)
    torch.testing.assert_close(mem.interpolate(wc, wp, g), g * wc + (1 - g) * wp)


@pytest.mark.parametrize("k", [1, 2])
def test_shift_is_circular_convolution_like_roll(gen, k):
    w = rand_weights(gen, B, H, N)
    s = rand_weights(gen, B, H, 2 * k + 1)
    ref = sum(s[..., j:j + 1] * torch.roll(w, shifts=d, dims=-1) for j, d in enumerate(range(-k, k + 1)))
    torch.testing.assert_close(mem.shift(w, s), ref)
    # The paper's formula, index by index: out(i) = sum_j w(j) s(i - j), i - j taken mod N
    # and mapped into -k..k (entry m of s is the shift m - k).
    out = mem.shift(w, s)
    for i in range(N):
        val = sum(w[0, 0, j] * s[0, 0, (i - j + k) % N] for j in range(N) if (i - j + k) % N <= 2 * k)
        torch.testing.assert_close(out[0, 0, i], val)


def test_shift_by_one_moves_focus_forward_and_wraps():
    w = torch.zeros(1, 1, N)
    w[0, 0, N - 1] = 1.0
    s = torch.tensor([[[0.0, 0.0, 1.0]]])  # all mass on shift +1
    out = mem.shift(w, s)
    assert out[0, 0, 0] == 1.0 and out.sum() == 1.0


def test_sharpen(gen):
    w = rand_weights(gen, B, H, N)
    gamma = 1 + torch.rand(B, H, 1, generator=gen) * 4
    ref = w ** gamma / (w ** gamma).sum(-1, keepdim=True)
    torch.testing.assert_close(mem.sharpen(w, gamma), ref, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(mem.sharpen(w, torch.ones(B, H, 1)), w, rtol=1e-4, atol=1e-6)


def test_sharpen_gradient_finite_on_exact_zeros():
    w = torch.zeros(1, 1, N)
    w[0, 0, 3] = 1.0
    w.requires_grad_(True)
    gamma = torch.full((1, 1, 1), 2.0, requires_grad=True)
    (mem.sharpen(w, gamma) * torch.arange(N)).sum().backward()
    assert torch.isfinite(w.grad).all() and torch.isfinite(gamma.grad).all()


def test_read_and_write_match_the_paper(gen):
    memory = torch.randn(B, N, M, generator=gen)
    w = rand_weights(gen, B, 2, N)
    r = mem.read(memory, w)
    for b in range(B):
        for h in range(2):
            torch.testing.assert_close(r[b, h], sum(w[b, h, i] * memory[b, i] for i in range(N)))
    e = torch.rand(B, 2, M, generator=gen)
    a = torch.randn(B, 2, M, generator=gen)
    # One head: erase then add, row by row.
    new = mem.write(memory, w[:, :1], e[:, :1], a[:, :1])
    ref = memory.clone()
    for b in range(B):
        for i in range(N):
            ref[b, i] = memory[b, i] * (1 - w[b, 0, i] * e[b, 0]) + w[b, 0, i] * a[b, 0]
    torch.testing.assert_close(new, ref)
    # Two heads: all erasures, then all additions (§3.2).
    new2 = mem.write(memory, w, e, a)
    ref2 = memory.clone()
    for h in range(2):
        ref2 = ref2 * (1 - w[:, h, :, None] * e[:, h, None, :])
    for h in range(2):
        ref2 = ref2 + w[:, h, :, None] * a[:, h, None, :]
    torch.testing.assert_close(new2, ref2)


def small_cfg(**kw):
    base = dict(input_size=5, output_size=4, hidden_size=16, memory_rows=12, memory_width=6)
    base.update(kw)
    return NTMConfig(**base)


@pytest.mark.parametrize("kw", [dict(controller="lstm"), dict(controller="ff"),
                                dict(controller="lstm", layers=2, read_heads=2, write_heads=3),
                                dict(controller="ff", read_heads=4, write_heads=4, shift_range=2)])
def test_ntm_shapes_weightings_and_gradients(kw):
    torch.manual_seed(0)
    cfg = small_cfg(**kw)
    model = NTM(cfg)
    x = torch.rand(7, 3, 5)
    logits, trace = model(x, trace=True)
    assert logits.shape == (7, 3, 4)
    assert trace.read.shape == (7, 3, cfg.read_heads, 12) and trace.write.shape == (7, 3, cfg.write_heads, 12)
    torch.testing.assert_close(trace.read.sum(-1), torch.ones(7, 3, cfg.read_heads))
    logits.sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.w0_logits.grad.abs().sum() > 0 and model.r0.grad.abs().sum() > 0  # learned initial state


def test_ntm_batch_equals_sequences_one_by_one():
    torch.manual_seed(0)
    model = NTM(small_cfg())
    x = torch.rand(6, 3, 5)
    batched = model(x)
    single = torch.cat([model(x[:, b:b + 1]) for b in range(3)], dim=1)
    torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-6)


def test_memory_starts_as_small_constant():
    model = NTM(small_cfg())
    assert torch.all(model.memory0 == 1e-6)
    assert "memory0" not in dict(model.named_parameters())


def test_lstm_baseline_and_build_model():
    cfg = small_cfg(model="lstm", hidden_size=8, layers=3)
    model = build_machine(cfg)
    assert isinstance(model, LSTMBaseline)
    assert model(torch.rand(4, 2, 5)).shape == (4, 2, 4)
    with pytest.raises(DS2Error, match="controller"):
        NTM(small_cfg(controller="gru"))
    with pytest.raises(DS2Error, match="model"):
        build_machine(small_cfg(model="transformer"))


def test_sequential_write_init_moves_the_untrained_write_head_one_row_per_step():
    x = torch.rand(6, 3, 5)
    torch.manual_seed(0)
    _, trace = NTM(small_cfg(write_init="sequential", read_heads=2, write_heads=2))(x, trace=True)
    rows = trace.write.argmax(-1)  # (T, B, W)
    assert torch.equal(rows, torch.arange(1, 7).view(6, 1, 1).expand_as(rows))  # from row 0: 1, 2, ...
    assert trace.write.max(-1).values.min() > 0.9  # and sharp
    torch.manual_seed(0)
    _, free = NTM(small_cfg(read_heads=2, write_heads=2))(x, trace=True)
    assert free.write.max(-1).values.max() < 0.9  # the default initialisation blurs at once
    with pytest.raises(DS2Error, match="write init"):
        NTM(small_cfg(write_init="tape"))


def test_memory_init_random_and_learned():
    fixed = NTM(small_cfg(memory_init="random"))
    assert "memory0" not in dict(fixed.named_parameters()) and "memory0" in fixed.state_dict()
    assert fixed.memory0.std() > 0.1  # distinct rows, so content addressing can tell them apart
    learned = NTM(small_cfg(memory_init="learned"))
    x = torch.rand(5, 2, 5)
    learned(x).sum().backward()
    assert learned.memory0.grad is not None and learned.memory0.grad.abs().sum() > 0
    with pytest.raises(DS2Error, match="memory init"):
        NTM(small_cfg(memory_init="zeros"))
