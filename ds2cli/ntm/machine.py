"""The Neural Turing Machine (feedforward or LSTM controller, any number of heads) and the
paper's LSTM baseline. Both map an input sequence (T, B, I) to output logits (T, B, O)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ds2cli.errors import DS2Error
from ds2cli.ntm import memory as mem_ops

# Initial memory: a small constant. Graves leaves it open; Collier & Beel (2018) found this
# converges about twice as fast as learned or random initial memory.
MEMORY_INIT = 1e-6
MEMORY_INITS = ("constant", "random", "learned")
# Scale of a random initial memory: rows distinct enough for content addressing to tell them apart.
MEMORY_INIT_STD = 0.5
WRITE_INITS = ("free", "sequential")
# write_init="sequential": initial biases of every write head's interpolation gate, shift +1
# logit and sharpening (softplus) that make an untrained head keep its previous weighting, move
# one row per step and stay sharp (about 0.95, 0.9 and gamma 3.1): a tape to log the input on.
SEQUENTIAL_WRITE_BIAS = {"gate": -3.0, "shift": 3.0, "gamma": 2.0}


@dataclass
class NTMConfig:
    """Everything needed to rebuild a model; stored in every checkpoint."""

    input_size: int
    output_size: int
    model: str = "ntm"             # "ntm" or "lstm" (the paper's baseline)
    controller: str = "lstm"       # NTM controller: "lstm" or "ff"
    hidden_size: int = 100         # controller size (NTM) or LSTM width (baseline)
    layers: int = 1                # controller / LSTM layers
    read_heads: int = 1
    write_heads: int = 1
    memory_rows: int = 128         # N
    memory_width: int = 20         # M
    shift_range: int = 1           # shifts -k..k allowed
    # Initial memory: "constant" (MEMORY_INIT everywhere), "random" (fixed N(0, MEMORY_INIT_STD^2)
    # per entry, drawn once per model) or "learned" (a parameter starting like "random").
    memory_init: str = "constant"
    # Write heads' initial addressing: "free" (the Linear's default initialisation) or
    # "sequential" (biased to move one row per step: SEQUENTIAL_WRITE_BIAS).
    write_init: str = "free"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "NTMConfig":
        return cls(**d)


@dataclass
class Trace:
    """Per-step head weightings recorded for plots: read (T, B, R, N), write (T, B, W, N)."""

    read: torch.Tensor
    write: torch.Tensor


def lstm_step(linear: nn.Linear, inputs: tuple[torch.Tensor, ...], h: torch.Tensor, c: torch.Tensor):
    """One LSTM step on the concatenated inputs (B, *) and state h, c (B, H) -> (h, c).

    Gates i, f, o, then the cell input, from one matrix product over [inputs, h].
    """
    z = F.linear(torch.cat((*inputs, h), dim=1), linear.weight, linear.bias)
    sig, cand = z.split([3 * h.shape[1], h.shape[1]], dim=1)
    i, f, o = torch.sigmoid(sig).chunk(3, dim=1)
    c = torch.addcmul(f * c, i, torch.tanh(cand))
    return o * torch.tanh(c), c


class NTM(nn.Module):
    """A Neural Turing Machine, batched over sequences.

    Each step the controller sees the input and the previous read vectors; one Linear emits the
    parameters of every head at once; all heads address the previous memory, the read heads read
    it, the write heads erase and add. The output layer sees the controller state and the new
    reads, and runs once over all steps at the end (it does not feed back).
    """

    def __init__(self, cfg: NTMConfig):
        super().__init__()
        self.cfg = cfg
        R, W, N, M = cfg.read_heads, cfg.write_heads, cfg.memory_rows, cfg.memory_width
        if R < 1 or W < 1:
            raise DS2Error(f"an NTM needs at least one read and one write head (got {R} and {W})")
        self.shifts = 2 * cfg.shift_range + 1
        # Per head: key (M), beta and gamma (2, softplus), gate (1), shift logits.
        self.addr_size = M + 3 + self.shifts
        ctrl_in = cfg.input_size + R * M
        hid = cfg.hidden_size
        if cfg.controller == "lstm":
            # One Linear per layer over [input, h_prev]: fewer ops per step than nn.LSTMCell.
            self.cells = nn.ModuleList(
                nn.Linear((ctrl_in if i == 0 else hid) + hid, 4 * hid) for i in range(cfg.layers))
            for cell in self.cells:  # nn.LSTMCell's initialisation
                nn.init.uniform_(cell.weight, -hid ** -0.5, hid ** -0.5)
                nn.init.uniform_(cell.bias, -hid ** -0.5, hid ** -0.5)
        elif cfg.controller == "ff":
            self.cells = nn.ModuleList(
                nn.Linear(ctrl_in if i == 0 else cfg.hidden_size, cfg.hidden_size) for i in range(cfg.layers))
        else:
            raise DS2Error(f"unknown controller {cfg.controller!r} (expected lstm or ff)")
        # One projection for all heads' parameters: fewer ops per step than one Linear per head.
        self.heads = nn.Linear(cfg.hidden_size, (R + W) * self.addr_size + 2 * W * M)
        if cfg.write_init == "sequential":
            self._bias_writes_sequential()
        elif cfg.write_init != "free":
            raise DS2Error(f"unknown write init {cfg.write_init!r} (expected {' or '.join(WRITE_INITS)})")
        self.out = nn.Linear(cfg.hidden_size + R * M, cfg.output_size)
        if cfg.memory_init == "constant":
            self.register_buffer("memory0", torch.full((N, M), MEMORY_INIT))
        elif cfg.memory_init == "random":  # a buffer: stored in the state dict, never trained
            self.register_buffer("memory0", torch.randn(N, M) * MEMORY_INIT_STD)
        elif cfg.memory_init == "learned":
            self.memory0 = nn.Parameter(torch.randn(N, M) * MEMORY_INIT_STD)
        else:
            raise DS2Error(f"unknown memory init {cfg.memory_init!r} (expected {', '.join(MEMORY_INITS)})")
        self.register_buffer("shift_index", mem_ops.shift_index(N, cfg.shift_range), persistent=False)
        # Learned initial weightings (as logits, focused on row 0) and initial read vectors.
        w0 = torch.zeros(R + W, N)
        w0[:, 0] = 7.0  # about 0.9 of the weight on row 0
        self.w0_logits = nn.Parameter(w0)
        self.r0 = nn.Parameter(torch.randn(R, M) * 0.01)

    def _bias_writes_sequential(self) -> None:
        """Set the write heads' gate, shift +1 and gamma biases (SEQUENTIAL_WRITE_BIAS)."""
        cfg, A, M = self.cfg, self.addr_size, self.cfg.memory_width
        with torch.no_grad():
            for head in range(cfg.read_heads, cfg.read_heads + cfg.write_heads):
                base = head * A  # this head's [key (M), beta, gamma, gate, shifts -k..k]
                self.heads.bias[base + M + 1] = SEQUENTIAL_WRITE_BIAS["gamma"]
                self.heads.bias[base + M + 2] = SEQUENTIAL_WRITE_BIAS["gate"]
                self.heads.bias[base + M + 3 + cfg.shift_range + 1] = SEQUENTIAL_WRITE_BIAS["shift"]

    def forward(self, x: torch.Tensor, trace: bool = False):
        """x (T, B, input_size) -> logits (T, B, output_size); with trace=True also a Trace."""
        cfg = self.cfg
        T, B, _ = x.shape
        R, W, M, A, S = cfg.read_heads, cfg.write_heads, cfg.memory_width, self.addr_size, self.shifts
        H = R + W
        memory = self.memory0.expand(B, -1, -1)
        w = torch.softmax(self.w0_logits, dim=-1).expand(B, -1, -1)  # (B, H, N)
        r = self.r0.reshape(1, R * M).expand(B, -1)  # (B, R*M)
        lstm = cfg.controller == "lstm"
        zeros = x.new_zeros(B, cfg.hidden_size)
        states = [(zeros, zeros)] * len(self.cells)
        hs, rs, ws = [], [], []
        heads = self.heads
        for x_t in x.unbind(0):
            # Controller: input and previous reads (F.linear: no nn.Module call overhead per step).
            if lstm:
                states[0] = lstm_step(self.cells[0], (x_t, r), *states[0])
                for i in range(1, len(self.cells)):
                    states[i] = lstm_step(self.cells[i], (states[i - 1][0],), *states[i])
                h = states[-1][0]
            else:
                h = torch.cat((x_t, r), dim=1)
                for cell in self.cells:
                    h = torch.tanh(F.linear(h, cell.weight, cell.bias))
            # Head parameters, split with as few ops as possible (each op costs at batch 1).
            addr, erase_add = F.linear(h, heads.weight, heads.bias).split([H * A, 2 * W * M], dim=1)
            keys, beta_gamma, gate, shift_logits = addr.view(B, H, A).split([M, 2, 1, S], dim=-1)
            beta, gamma = F.softplus(beta_gamma).split(1, dim=-1)
            # The four addressing steps, all heads at once, on the previous memory.
            w = mem_ops.interpolate(mem_ops.content_weights(memory, keys, beta), w, torch.sigmoid(gate))
            w = mem_ops.shift(w, torch.softmax(shift_logits, dim=-1), self.shift_index)
            w = mem_ops.sharpen(w, 1 + gamma)
            w_read, w_write = w.split([R, W], dim=1)
            r = mem_ops.read(memory, w_read).view(B, R * M)
            erase, add = erase_add.view(B, 2 * W, M).split(W, dim=1)
            memory = mem_ops.write(memory, w_write, torch.sigmoid(erase), add)
            hs.append(h)
            rs.append(r)
            if trace:
                ws.append(w)
        logits = self.out(torch.cat((torch.stack(hs), torch.stack(rs)), dim=-1))  # (T, B, O)
        if not trace:
            return logits
        wt = torch.stack(ws)  # (T, B, H, N)
        return logits, Trace(read=wt[:, :, :R], write=wt[:, :, R:])


class LSTMBaseline(nn.Module):
    """The paper's baseline: a stack of LSTM layers and a sigmoid output layer."""

    def __init__(self, cfg: NTMConfig):
        super().__init__()
        self.cfg = cfg
        self.lstm = nn.LSTM(cfg.input_size, cfg.hidden_size, num_layers=cfg.layers)
        self.out = nn.Linear(cfg.hidden_size, cfg.output_size)

    def forward(self, x: torch.Tensor, trace: bool = False):
        """x (T, B, input_size) -> logits (T, B, output_size); no trace (no memory to show)."""
        logits = self.out(self.lstm(x)[0])
        return (logits, None) if trace else logits


def build_machine(cfg: NTMConfig) -> nn.Module:
    if cfg.model == "ntm":
        return NTM(cfg)
    if cfg.model == "lstm":
        return LSTMBaseline(cfg)
    raise DS2Error(f"unknown model {cfg.model!r} (expected ntm or lstm)")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
