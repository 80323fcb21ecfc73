"""The model on a CUDA GPU: the same training arithmetic as on the CPU (where GRUs take the
hand-written recurrence and the padded path, and the GPU takes cuDNN's packed kernels with folded
batch norm), mixed-precision training steps that learn, and fp16/bf16 inference close to fp32.
Skipped where there is no GPU (CI has none); run on a GPU machine with `pytest tests/test_gpu.py`."""
from __future__ import annotations

import copy
from types import SimpleNamespace

import pytest
import torch

from ds2cli.model import DeepSpeech2, ModelConfig
from ds2cli.trainer import autocast, ctc_loss_sum

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
VOCAB = 12


@pytest.fixture(autouse=True)
def true_fp32():
    """TF32 convolutions and matmuls would differ from the CPU by ~1e-3; compare in true fp32."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def small_config(rnn_type: str, bidirectional: bool = True, lookahead: int = 0) -> ModelConfig:
    return ModelConfig(conv_type="2d", conv=[{"channels": 4, "kernel": [11, 5], "stride": [2, 2]}],
                       rnn_type=rnn_type, rnn_layers=2, rnn_hidden=24, bidirectional=bidirectional,
                       lookahead=lookahead, fc_hidden=[16], n_bins=21)


def batch(seed: int = 0, n: int = 3, frames: int = 60) -> SimpleNamespace:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([frames, frames // 2, frames - 7])[:n]
    target_lengths = torch.tensor([6, 3, 5])[:n]
    return SimpleNamespace(feats=torch.randn(n, frames, 21, generator=g), lengths=lengths,
                           targets=torch.randint(1, VOCAB, (int(target_lengths.sum()),), generator=g),
                           target_lengths=target_lengths)


@pytest.mark.parametrize("rnn_type,bidirectional,lookahead",
                         [("gru", True, 0), ("lstm", True, 0), ("gru", False, 3)])
def test_training_step_on_gpu_equals_cpu(rnn_type, bidirectional, lookahead):
    torch.manual_seed(0)
    cpu_model = DeepSpeech2(small_config(rnn_type, bidirectional, lookahead), VOCAB).train()
    gpu_model = copy.deepcopy(cpu_model).cuda()
    data = batch()
    results = []
    for model, device in ((cpu_model, torch.device("cpu")), (gpu_model, torch.device("cuda"))):
        loss, _ = ctc_loss_sum(model, data, device)
        loss.backward()
        results.append((loss.item(), [p.grad.cpu() for p in model.parameters()],
                        [b.cpu() for b in model.buffers()]))
    (loss_c, grads_c, bufs_c), (loss_g, grads_g, bufs_g) = results
    assert loss_g == pytest.approx(loss_c, rel=1e-5)
    for gc, gg in zip(grads_c, grads_g):
        assert torch.allclose(gc, gg, rtol=1e-3, atol=1e-4 * gc.abs().max().item())
    for bc, bg in zip(bufs_c, bufs_g):
        assert torch.allclose(bc.float(), bg.float(), rtol=1e-4, atol=1e-5)
    with torch.no_grad():  # eval mode: running statistics, folded batch norm on the GPU
        out_c, _ = cpu_model.eval()(data.feats, data.lengths)
        out_g, _ = gpu_model.eval()(data.feats.cuda(), data.lengths.cuda())
    assert torch.allclose(out_c, out_g.cpu(), atol=1e-4)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_training_on_gpu_learns(precision):
    """The trainer's autocast and loss scaling: 40 steps on one batch lower its loss by half."""
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = DeepSpeech2(small_config("gru"), VOCAB).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")
    data = batch(frames=80)
    losses = []
    for _ in range(40):
        with autocast(device, precision):
            loss, _ = ctc_loss_sum(model, data, device)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_inference_is_close_to_fp32(precision):
    from ds2cli.features import FeatureConfig, FeatureStats
    from ds2cli.inference import Recognizer
    from ds2cli.text import CharTokenizer

    torch.manual_seed(0)
    tokenizer = CharTokenizer.english()
    cfg = ModelConfig(conv_type="1d", conv=[{"channels": 32, "kernel": [1, 11], "stride": [1, 2]}],
                      rnn_layers=2, rnn_hidden=32, n_bins=161)
    model = DeepSpeech2(cfg, len(tokenizer.vocab))
    stats = FeatureStats([0.0] * 161, [1.0] * 161)
    waves = [torch.randn(16000 * s).numpy() * 0.1 for s in (1, 3, 40)]  # the 40 s one is chunked
    ref = Recognizer(model, tokenizer, FeatureConfig(), stats, "cuda", "fp32").emissions(waves)
    low = Recognizer(model, tokenizer, FeatureConfig(), stats, "cuda", precision).emissions(waves)
    for r, h in zip(ref, low):
        assert r.shape == h.shape
        assert (r - h).abs().max() < 0.1  # log-probabilities
        assert (r.argmax(-1) == h.argmax(-1)).float().mean() > 0.95


@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_streaming_on_gpu_matches_offline(precision):
    """The streaming path on the GPU: 160 ms chunks of three streams advanced in one batched step
    give the offline fp32 emissions (exactly at fp32, closely at fp16/bf16)."""
    import numpy as np

    from ds2cli.features import FeatureConfig, FeatureStats
    from ds2cli.inference import Recognizer
    from ds2cli.stream import StreamingModel
    from ds2cli.text import CharTokenizer

    torch.manual_seed(0)
    tokenizer = CharTokenizer.english()
    cfg = ModelConfig(conv_type="1d", conv=[{"channels": 32, "kernel": [1, 11], "stride": [1, 3]}],
                      rnn_type="gru", rnn_layers=2, rnn_hidden=32, bidirectional=False, lookahead=6, n_bins=161)
    model = DeepSpeech2(cfg, len(tokenizer.vocab)).eval()
    stats = FeatureStats([0.0] * 161, [1.0] * 161)
    waves = [np.random.default_rng(s).standard_normal(16000 * s).astype(np.float32) * 0.1 for s in (1, 2, 3)]
    ref = Recognizer(model, tokenizer, FeatureConfig(), stats, "cuda", "fp32").emissions(waves)
    stream = StreamingModel(Recognizer(model, tokenizer, FeatureConfig(), stats, "cuda", precision))
    states = [stream.new_state() for _ in waves]
    got = [[] for _ in waves]
    step = 2560
    for lo in range(0, max(len(w) for w in waves) + step, step):
        chunks = [w[lo: lo + step] for w in waves]
        final = [lo + step >= len(w) and not s.finished for w, s in zip(waves, states)]
        live = [i for i, s in enumerate(states) if not s.finished]
        if not live:
            break
        outs = stream.step([states[i] for i in live], [chunks[i] for i in live], [final[i] for i in live])
        for i, out in zip(live, outs):
            got[i].append(out)
    for r, parts in zip(ref, got):
        h = torch.from_numpy(np.concatenate(parts))
        r = r.float().cpu()
        assert r.shape == h.shape
        tol = 1e-4 if precision == "fp32" else 0.1
        assert (r - h).abs().max() < tol
        assert (r.argmax(-1) == h.argmax(-1)).float().mean() > 0.95
