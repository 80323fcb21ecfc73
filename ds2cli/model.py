"""The Deep Speech 2 network (Amodei et al. 2016, section 3; ../shared/docs/DS2.md).

features (B, T, F) -> conv front end (1D or 2D, clipped ReLU) -> recurrent layers (RNN/GRU/LSTM,
sequence-wise batch norm on the input-to-hidden projection, directions summed) -> optional
lookahead convolution -> fully connected layers -> logits over the alphabet (blank = 0), for CTC.

Padded frames are zeroed after every layer and excluded from batch-norm statistics, so an
utterance's output never depends on what else is in its batch.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ds2cli.recurrence import gru_layer
from ds2cli.validation import check_fields, check_value

RELU_CLIP = 20.0  # DS2's clipped ReLU: min(max(x, 0), 20)


@dataclass
class ConvLayer:
    channels: int = 32
    kernel: tuple[int, int] = (41, 11)  # (frequency, time); frequency ignored for 1D
    stride: tuple[int, int] = (2, 2)

    def __post_init__(self):
        check_fields(self, {"channels": ">= 1"})
        for name in ("kernel", "stride"):
            value = getattr(self, name)
            if not isinstance(value, (list, tuple)) or len(value) != 2:
                raise ValueError(f"conv {name} must be [frequency, time], two integers >= 1, not {value!r}")
            for v in value:
                check_value(f"conv {name}", v, "int", ">= 1")
            setattr(self, name, tuple(value))

    @classmethod
    def parse(cls, c) -> "ConvLayer":
        """A ConvLayer, or a {channels, kernel, stride} table of a recipe."""
        if isinstance(c, ConvLayer):
            return c
        if not isinstance(c, dict) or set(c) - {"channels", "kernel", "stride"}:
            raise ValueError(f"conv layers must be tables of channels, kernel and stride, not {c!r}")
        return cls(**c)


@dataclass
class ModelConfig:
    """Architecture; stored in every checkpoint and rebuilt from it."""

    conv_type: str = "2d"  # "1d" (time only) or "2d" (time and frequency)
    conv: list[ConvLayer] = field(default_factory=lambda: [ConvLayer(32, (41, 11), (2, 2)),
                                                            ConvLayer(32, (21, 11), (2, 1))])
    rnn_type: str = "gru"  # "rnn", "gru" or "lstm"
    rnn_layers: int = 5
    rnn_hidden: int = 800
    bidirectional: bool = True
    batch_norm: bool = True  # sequence-wise BN on conv and input-to-hidden projections
    lookahead: int = 0  # future frames of the lookahead convolution (unidirectional models)
    fc_hidden: list[int] = field(default_factory=list)  # hidden FC layers before the output
    n_bins: int = 161

    def __post_init__(self):
        check_fields(self, {"rnn_layers": "[1, 7]", "rnn_hidden": ">= 1", "lookahead": ">= 0",
                            "n_bins": ">= 1"})
        if not isinstance(self.conv, (list, tuple)):
            raise ValueError(f"conv must be a list of conv layers, not {self.conv!r}")
        self.conv = [ConvLayer.parse(c) for c in self.conv]
        if not isinstance(self.fc_hidden, (list, tuple)):
            raise ValueError(f"fc_hidden must be a list of layer sizes, not {self.fc_hidden!r}")
        for size in self.fc_hidden:
            check_value("fc_hidden sizes", size, "int", ">= 1")
        if self.conv_type not in ("1d", "2d"):
            raise ValueError(f"conv_type must be '1d' or '2d', not {self.conv_type!r}")
        if self.rnn_type not in ("rnn", "gru", "lstm"):
            raise ValueError(f"rnn_type must be 'rnn', 'gru' or 'lstm', not {self.rnn_type!r}")
        if not 1 <= len(self.conv) <= 3:
            raise ValueError("the front end needs 1 to 3 convolution layers")
        if not 1 <= self.rnn_layers <= 7:
            raise ValueError("rnn_layers must be between 1 and 7")
        if any(c.kernel[1] % 2 == 0 for c in self.conv):
            raise ValueError("convolution time kernels must be odd (so output frames line up with input frames)")
        if self.lookahead and self.bidirectional:
            raise ValueError("lookahead convolution is for unidirectional models")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["conv"] = [{"channels": c.channels, "kernel": list(c.kernel), "stride": list(c.stride)}
                     for c in self.conv]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model option(s): {', '.join(sorted(unknown))}")
        return cls(**d)


def clipped_relu(x: torch.Tensor) -> torch.Tensor:
    return F.hardtanh(x, 0.0, RELU_CLIP)


def _global_sum(t: torch.Tensor, sync: bool) -> torch.Tensor:
    """Sum of `t` over all data-parallel workers when `sync` (autograd flows back through the
    all-reduce, as in SyncBatchNorm), else `t` itself."""
    if not sync:
        return t
    from torch.distributed.nn.functional import all_reduce

    return all_reduce(t)


def sync_batch_norm(model: nn.Module, enabled: bool = True) -> None:
    """Make every batch norm of `model` take its statistics over the whole global batch (all
    workers of the initialised process group) instead of each worker's share. Every worker must
    then run the same number of training forward passes."""
    for module in model.modules():
        if isinstance(module, (MaskedBatchNorm, BatchNormRNN)):
            module.sync = enabled


def time_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) lengths -> (B, T) bool, True on real frames."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


class MaskedBatchNorm(nn.Module):
    """Batch norm over channel dim 1 whose statistics skip padded positions.

    x shape = (B, C, ...), mask shape broadcastable to x with 1 on real positions."""

    def __init__(self, num_features: int, momentum: float = 0.1, eps: float = 1e-5, affine: bool = True):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.ones(num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.sync = False  # statistics over all workers (see sync_batch_norm)

    def statistics(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and biased variance per channel over real positions; updates running averages."""
        if not self.training:
            return self.running_mean, self.running_var
        dims = [d for d in range(x.dim()) if d != 1]
        mask = mask.to(x.dtype)
        sums = _global_sum(torch.stack([(x * mask).sum(dims), mask.expand_as(x).sum(dims)]), self.sync)
        count = sums[1].clamp_min(1.0)
        mean = sums[0] / count
        var = _global_sum((((x - _channels(mean, x)) * mask) ** 2).sum(dims), self.sync) / count
        self._update_running(mean, var, count)
        return mean, var

    @torch.no_grad()
    def _update_running(self, mean, var, count):
        unbiased = var * count / (count - 1).clamp_min(1.0)
        self.running_mean.lerp_(mean.detach().float(), self.momentum)
        self.running_var.lerp_(unbiased.detach().float(), self.momentum)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mean, var = self.statistics(x, mask)
        scale = torch.rsqrt(var + self.eps)
        if self.weight is not None:
            scale = scale * self.weight
        shift = -mean * scale + (self.bias if self.bias is not None else 0.0)
        return (x * _channels(scale, x) + _channels(shift, x)) * mask


def _channels(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(C,) -> shape broadcastable along dim 1 of `like`."""
    return v.view(1, -1, *([1] * (like.dim() - 2)))


class ConvFrontEnd(nn.Module):
    """1D or 2D convolutions with (masked) batch norm and clipped ReLU.

    (B, T, F) features -> (B, T', D) with T' = output_lengths(T)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.two_d = config.conv_type == "2d"
        self.layers = nn.ModuleList()
        self.norms = nn.ModuleList()
        in_ch, freq = (1 if self.two_d else config.n_bins), config.n_bins
        for layer in config.conv:
            (kf, kt), (sf, st) = layer.kernel, layer.stride
            if self.two_d:
                conv = nn.Conv2d(in_ch, layer.channels, (kf, kt), (sf, st), (kf // 2, kt // 2),
                                 bias=not config.batch_norm)
                freq = (freq + 2 * (kf // 2) - kf) // sf + 1
            else:
                conv = nn.Conv1d(in_ch, layer.channels, kt, st, kt // 2, bias=not config.batch_norm)
            self.layers.append(conv)
            self.norms.append(MaskedBatchNorm(layer.channels) if config.batch_norm else None)
            in_ch = layer.channels
        self.output_size = in_ch * freq if self.two_d else in_ch
        self.time_specs = [(c.kernel[1], c.stride[1], c.kernel[1] // 2) for c in config.conv]

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        for k, s, p in self.time_specs:
            lengths = torch.div(lengths + 2 * p - k, s, rounding_mode="floor") + 1
        return lengths

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x * time_mask(lengths, x.shape[1])[..., None]  # padding must not leak into convolutions
        x = x.transpose(1, 2)  # (B, F, T)
        if self.two_d:
            x = x.unsqueeze(1)  # (B, 1, F, T)
        for (k, s, p), conv, norm in zip(self.time_specs, self.layers, self.norms):
            x = conv(x)
            lengths = torch.div(lengths + 2 * p - k, s, rounding_mode="floor") + 1
            mask = time_mask(lengths, x.shape[-1]).view(x.shape[0], *([1] * (x.dim() - 2)), -1)
            if norm is not None:
                x = norm(x, mask)
            x = clipped_relu(x) * mask
        if self.two_d:
            x = x.flatten(1, 2)  # (B, C*F', T')
        return x.transpose(1, 2).contiguous(), lengths  # (B, T', D)


class BatchNormRNN(nn.Module):
    """One recurrent layer h_t = f(BN(W x_t) + U h_{t-1}) (DS2 eq. 2), uni- or bidirectional,
    directions summed.

    The BN of the projection is folded into the RNN's own input weights: with batch mean `mu`
    and std `sigma` of W x (over real frames, computed from the input's covariance), the layer
    runs the fused cuDNN/oneDNN kernel with weights gamma/sigma * W and bias beta - gamma*mu/sigma.
    That is exactly BN(W x) + ... without a second pass over the sequence. GRU training on the
    CPU instead normalises the explicit projection and runs ds2cli.recurrence (same result)."""

    GATES = {"rnn": 1, "gru": 3, "lstm": 4}
    padded_on_cpu = True  # the faster padded path on the CPU (same result as the packed one)
    gru_recurrence_on_cpu = True  # GRU training on the CPU through ds2cli.recurrence (same result)

    def __init__(self, input_size: int, hidden: int, rnn_type: str, bidirectional: bool, batch_norm: bool):
        super().__init__()
        cls = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[rnn_type]
        kwargs = {"nonlinearity": "relu"} if rnn_type == "rnn" else {}
        self.rnn = cls(input_size, hidden, batch_first=True, bidirectional=bidirectional, **kwargs)
        self.hidden, self.bidirectional, self.batch_norm = hidden, bidirectional, batch_norm
        self.suffixes = ["_l0", "_l0_reverse"] if bidirectional else ["_l0"]
        self.sync = False  # statistics over all workers (see sync_batch_norm)
        width = self.GATES[rnn_type] * hidden
        if batch_norm:
            # gamma per direction; beta is the RNN's own bias_ih
            self.bn = nn.ModuleList(MaskedBatchNorm(width, affine=False) for _ in self.suffixes)
            self.gamma = nn.ParameterList(nn.Parameter(torch.ones(width)) for _ in self.suffixes)

    def _folded_weights(self, x: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """RNN input weights with the batch norm folded in. x (B, T, D), mask (B, T)."""
        params = {}
        if self.training:
            m = mask.to(x.dtype)[..., None]
            sums = _global_sum(torch.cat([(x * m).sum((0, 1)), m.sum().reshape(1)]), self.sync)
            n = sums[-1].clamp_min(2.0)
            x_mean = sums[:-1] / n  # (D,)
            xc = ((x - x_mean) * m).reshape(-1, x.shape[-1])
            cov = _global_sum(xc.T @ xc, self.sync) / n  # (D, D)
        for i, sfx in enumerate(self.suffixes):
            w, b = getattr(self.rnn, "weight_ih" + sfx), getattr(self.rnn, "bias_ih" + sfx)
            bn = self.bn[i]
            if self.training:
                mean = w @ x_mean
                var = ((w @ cov) * w).sum(1).clamp_min(0.0)  # diag(W C W^T)
                bn._update_running(mean, var, n)
            else:
                mean, var = bn.running_mean, bn.running_var
            scale = self.gamma[i] * torch.rsqrt(var + bn.eps)
            params["weight_ih" + sfx] = w * scale[:, None]
            params["bias_ih" + sfx] = b - mean * scale
        return params

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, T, D), lengths (B,) -> (B, T, H); frames past each length are not meaningful
        (the caller zeroes them)."""
        if (x.device.type == "cpu" and isinstance(self.rnn, nn.GRU) and self.gru_recurrence_on_cpu
                and torch.is_grad_enabled()):
            return self._forward_gru_recurrence(x, mask)
        if x.device.type == "cpu" and self.padded_on_cpu:
            # fp32 even under bf16 autocast: torch's CPU RNN then converts at every time step
            # (about 5x slower than fp32), and the batch-norm statistics want fp32 sums anyway
            with torch.autocast("cpu", enabled=False):
                x = x.float()
                params = self._folded_weights(x, mask) if self.batch_norm else {}
                out = self._forward_padded(x, lengths, params)
        else:
            params = self._folded_weights(x, mask) if self.batch_norm else {}
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, _ = torch.func.functional_call(self.rnn, params, (packed,), strict=False)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        if self.bidirectional:
            out = out[..., : self.hidden] + out[..., self.hidden:]
        return out

    def _forward_gru_recurrence(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """GRU training on the CPU: both directions' input projections in one matrix product,
        batch norm on the projection itself (cheaper here than the folding's covariance), then
        both recurrences together with a hand-written backward (ds2cli.recurrence, several times
        faster than differentiating torch's CPU GRU). x (B, T, D), mask (B, T) -> (B, T, H)."""
        def weights(name: str) -> list[torch.Tensor]:
            return [getattr(self.rnn, name + sfx) for sfx in self.suffixes]

        batch, steps, dirs = x.shape[0], x.shape[1], len(self.suffixes)
        if self.batch_norm:
            # statistics and recurrence in fp32 even under bf16 autocast (sums over many frames)
            y = F.linear(x, torch.cat(weights("weight_ih"))).float()  # (B, T, dirs * 3H)
            mean, var = self._projection_statistics(y, mask)
            scale = torch.cat(list(self.gamma)) * torch.rsqrt(var + self.bn[0].eps)
            xi = y * scale + (torch.cat(weights("bias_ih")) - mean * scale)
        else:
            xi = F.linear(x, torch.cat(weights("weight_ih")), torch.cat(weights("bias_ih")))
        return gru_layer(xi.view(batch, steps, dirs, -1), torch.stack(weights("weight_hh")),
                         torch.stack(weights("bias_hh")), mask)

    def _projection_statistics(self, y: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch-norm mean and variance of the projections y (B, T, dirs * G) over real frames,
        all directions at once; the running averages of each direction's self.bn follow."""
        if not self.training:
            return (torch.cat([bn.running_mean for bn in self.bn]), torch.cat([bn.running_var for bn in self.bn]))
        m = mask.to(y.dtype)[..., None]
        sums = _global_sum(torch.cat([(y * m).sum((0, 1)), m.sum().reshape(1)]), self.sync)
        n = sums[-1].clamp_min(1.0)
        mean = sums[:-1] / n
        var = _global_sum((((y - mean) * m) ** 2).sum((0, 1)), self.sync) / n
        for bn, mu, v in zip(self.bn, mean.chunk(len(self.bn)), var.chunk(len(self.bn))):
            bn._update_running(mu, v, n)
        return mean, var

    def _forward_padded(self, x: torch.Tensor, lengths: torch.Tensor, params: dict) -> torch.Tensor:
        """The same result as the packed path, faster on the CPU: there PyTorch's packed RNN
        differentiates a slice per time step, each backward filling a tensor the size of the whole
        input (quadratic in T). Here each direction runs over the padded batch (input projection
        in one matrix product); the reverse direction gets every utterance reversed within its own
        length, so padding never reaches a real frame. x (B, T, D) -> (B, T, H * directions)"""
        outs = []
        for sfx in self.suffixes:
            weights = {name + "_l0": params.get(name + sfx, getattr(self.rnn, name + sfx))
                       for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
            reverse = sfx.endswith("reverse")
            inp = reverse_within_lengths(x, lengths) if reverse else x
            out, _ = torch.func.functional_call(self._one_direction, weights, (inp,), strict=True)
            outs.append(reverse_within_lengths(out, lengths) if reverse else out)
        return torch.cat(outs, -1) if len(outs) > 1 else outs[0]

    @property
    def _one_direction(self) -> nn.Module:
        """A parameter-free unidirectional twin of self.rnn, for functional calls (kept out of
        the module tree so the state dict is unchanged)."""
        twin = self.__dict__.get("_twin")
        if twin is None:
            rnn = self.rnn
            kwargs = {"nonlinearity": rnn.nonlinearity} if isinstance(rnn, nn.RNN) else {}
            twin = type(rnn)(rnn.input_size, rnn.hidden_size, batch_first=True, **kwargs)
            self.__dict__["_twin"] = twin
        twin.train(self.training)
        return twin


def reverse_within_lengths(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence's first lengths[b] frames, leave the padding where it is.
    x (B, T, ...), lengths (B,)"""
    t = torch.arange(x.shape[1], device=x.device)[None, :]  # (1, T)
    lengths = lengths.to(x.device)[:, None]
    index = torch.where(t < lengths, lengths - 1 - t, t)  # (B, T)
    return x.gather(1, index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x))


class Lookahead(nn.Module):
    """Row convolution (DS2 section 3.7): r_t = sum_{j=0..tau} W_j * h_{t+j}, per feature."""

    def __init__(self, size: int, tau: int):
        super().__init__()
        self.tau = tau
        self.conv = nn.Conv1d(size, size, tau + 1, groups=size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, H), zero on padded frames -> (B, T, H)"""
        x = F.pad(x.transpose(1, 2), (0, self.tau))
        return self.conv(x).transpose(1, 2)


class DeepSpeech2(nn.Module):
    def __init__(self, config: ModelConfig, vocab_size: int):
        super().__init__()
        self.config, self.vocab_size = config, vocab_size
        self.frontend = ConvFrontEnd(config)
        size = self.frontend.output_size
        self.rnns = nn.ModuleList()
        for i in range(config.rnn_layers):
            self.rnns.append(BatchNormRNN(size, config.rnn_hidden, config.rnn_type, config.bidirectional,
                                          config.batch_norm))
            size = config.rnn_hidden
        self.lookahead = Lookahead(size, config.lookahead) if config.lookahead else None
        fcs = []
        for width in config.fc_hidden:
            fcs.append(nn.Linear(size, width))
            size = width
        self.fcs = nn.ModuleList(fcs)
        self.output = nn.Linear(size, vocab_size)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return self.frontend.output_lengths(lengths)

    @property
    def time_stride(self) -> int:
        """Input frames per output frame."""
        stride = 1
        for _, s, _ in self.frontend.time_specs:
            stride *= s
        return stride

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """feats (B, T, F) normalised features, lengths (B,) -> logits (B, T', V), lengths (B,)"""
        x, lengths = self.frontend(feats, lengths)
        mask = time_mask(lengths, x.shape[1])  # (B, T')
        fmask = mask[..., None].to(x.dtype)
        for rnn in self.rnns:
            x = rnn(x, lengths, mask) * fmask
        if self.lookahead is not None:
            x = clipped_relu(self.lookahead(x)) * fmask
        for fc in self.fcs:
            x = clipped_relu(fc(x))
        return self.output(x), lengths

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
