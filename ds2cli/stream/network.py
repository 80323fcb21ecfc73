"""A forward-only DS2 network run on live audio, many streams per forward pass.

Offline, `Recognizer.emissions` turns a whole recording into CTC log-probabilities. Every stage of
a forward-only model has a bounded right context, so the same numbers can be produced as audio
arrives:

- the centred STFT (reflect padding of n_fft // 2 samples at both ends): frame i needs the
  padded samples [i*hop, i*hop + n_fft);
- each convolution (time kernel k, stride s, symmetric zero padding k // 2): output j needs its
  input frames [j*s, j*s + k) of the zero-padded input;
- the recurrent layers carry their hidden state from chunk to chunk;
- the lookahead (row) convolution: output t needs recurrent outputs t .. t + tau (zeros after
  the end).

A `NetState` holds one stream's unconsumed samples, the unconsumed input frames of every
convolution, the hidden states and the lookahead buffer. `StreamingModel.step` appends each
stream's new samples, runs every layer once for all streams together (the buffers are padded to a
common length, so a stream never sees another's frames), and returns the frames that became
computable. When a stream is flushed (`final`), the end padding of each stage is appended, and
the concatenated outputs equal the offline emissions of the whole recording (tests/test_stream.py).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ds2cli.errors import DS2Error
from ds2cli.features import EPS
from ds2cli.model import clipped_relu

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class NetState:
    """One stream's position in the network. Buffers hold only what later frames still need, so
    the state stays bounded however long the stream runs."""

    received: int = 0  # samples received so far
    pending: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # before the start padding
    signal: np.ndarray | None = None  # padded-signal samples from `signal_start` on (None: not started)
    signal_start: int = 0  # position of signal[0] in the padded signal
    next_frame: int = 0  # next STFT frame to compute
    conv: list = field(default_factory=list)  # per conv layer: unconsumed input frames (C, [F,] T)
    hidden: list = field(default_factory=list)  # per recurrent layer: h (1, 1, H), (h, c) for LSTM, or None
    look: torch.Tensor | None = None  # recurrent outputs waiting for the lookahead (T, H)
    frames_out: int = 0  # emission frames returned so far
    finished: bool = False


class StreamingModel:
    """A forward-only DS2 network run on streams. Bidirectional models are refused (DS2Error)."""

    def __init__(self, recognizer):
        model = recognizer.model
        cfg = model.config
        if cfg.bidirectional:
            raise DS2Error(f"{recognizer.checkpoint_path or 'model'}: cannot stream a bidirectional model "
                           f"(its backward layers need the whole recording); train a forward-only "
                           f"recipe such as tiny-stream (model.bidirectional = false, with lookahead)")
        self.recognizer = recognizer
        self.model = model.eval()
        self.tokenizer = recognizer.tokenizer
        self.feature_config = recognizer.feature_config
        self.device, self.precision = recognizer.device, recognizer.precision
        fc = self.feature_config
        self.sample_rate = fc.sample_rate
        self.n_fft, self.hop, self.half = fc.n_fft, fc.hop_length, fc.n_fft // 2
        self.frame_seconds = recognizer.frame_seconds
        self.vocab_size = model.vocab_size
        self.two_d = model.frontend.two_d
        self._window = torch.hann_window(self.n_fft, dtype=torch.float32)
        stats = recognizer.feature_stats
        self._mean = torch.tensor(stats.mean, dtype=torch.float32)
        self._std = torch.tensor(stats.std, dtype=torch.float32)
        with torch.no_grad():
            self._rnn_params = [rnn._folded_weights(None, None) if rnn.batch_norm else {}
                                for rnn in model.rnns]
        self.tau = cfg.lookahead if model.lookahead is not None else 0
        self.latency_ms = self._latency_ms()

    @classmethod
    def from_checkpoint(cls, path, device: str = "cpu", precision: str = "fp32") -> "StreamingModel":
        from ds2cli.decode.decoder import load_recognizer

        return cls(load_recognizer(path, device, precision)[0])

    def _latency_ms(self) -> float:
        """Algorithmic latency: how far past a frame's centre the audio must reach before its
        emission can be computed (conv right context + lookahead, in feature frames, times the
        hop, plus the STFT's half window)."""
        right, stride = 0, 1
        for k, s, _ in self.model.frontend.time_specs:
            right += (k // 2) * stride
            stride *= s
        frames = right + self.tau * stride
        return frames * self.feature_config.hop_ms + 1000 * self.half / self.sample_rate

    # -- states -------------------------------------------------------------------------------
    def new_state(self) -> NetState:
        state = NetState()
        fe = self.model.frontend
        channels, freq = (1, self.feature_config.n_bins) if self.two_d else (self.feature_config.n_bins, None)
        for (k, _, p), conv in zip(fe.time_specs, fe.layers):
            shape = (channels, freq, p) if self.two_d else (channels, p)
            state.conv.append(torch.zeros(shape, device=self.device))  # the start padding
            channels = conv.out_channels
            if self.two_d:
                kf, sf = conv.kernel_size[0], conv.stride[0]
                freq = (freq + 2 * (kf // 2) - kf) // sf + 1
        state.hidden = [None] * len(self.model.rnns)
        state.look = torch.zeros(0, self.model.config.rnn_hidden, device=self.device)
        return state

    # -- the step ---------------------------------------------------------------------------------
    @torch.inference_mode()
    def step(self, states: list[NetState], chunks: list[np.ndarray],
             final: list[bool] | None = None) -> list[np.ndarray]:
        """Append each stream's new float32 samples (at sample_rate, any length, 0 included) and
        advance all streams with one batched pass through every layer. Returns each stream's new
        emission frames (t_i, V), float32 natural-log posteriors (t_i may be 0). final[i] = True
        flushes stream i: after that its concatenated outputs equal the offline emissions of the
        whole recording, and the state accepts nothing more."""
        final = list(final) if final is not None else [False] * len(states)
        if not len(states) == len(chunks) == len(final):
            raise ValueError("step needs one chunk and one final flag per state")
        for st in states:
            if st.finished:
                raise ValueError("this stream was already finished; start a new state")
        feats = [self._features(st, np.asarray(c, dtype=np.float32).reshape(-1), fin)
                 for st, c, fin in zip(states, chunks, final)]
        with self._autocast():
            xs = self._frontend(states, feats, final)
            xs = self._recurrent(states, xs)
            xs = self._lookahead(states, xs, final)
            out = self._head(xs)
        for st, o, fin in zip(states, out, final):
            st.frames_out += len(o)
            st.finished = fin
        return out

    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=PRECISIONS[self.precision])

    # -- features ---------------------------------------------------------------------------------
    def _features(self, st: NetState, samples: np.ndarray, final: bool) -> torch.Tensor:
        """New normalised feature frames of one stream (T, F), on the CPU."""
        st.received += len(samples)
        half = self.half
        if st.signal is None:
            st.pending = np.concatenate([st.pending, samples])
            if len(st.pending) <= half:  # the start reflection needs samples 1 .. half
                return self._no_frames()
            st.signal = np.concatenate([st.pending[half:0:-1], st.pending])
            st.pending = np.zeros(0, np.float32)
        else:
            st.signal = np.concatenate([st.signal, samples])
        n = st.received
        if final:  # the end reflection: samples n-2 down to n-1-half (padded positions n+half-2 .. n-1)
            lo = n - 1 - st.signal_start
            st.signal = np.concatenate([st.signal, st.signal[lo: lo + half][::-1]])
            last = (n + 2 * half - self.n_fft) // self.hop + 1  # frames of the whole recording
        else:
            last = (st.signal_start + len(st.signal) - self.n_fft) // self.hop + 1
        first = st.next_frame
        if last <= first:
            return self._no_frames()
        seg = torch.from_numpy(st.signal[first * self.hop - st.signal_start: (last - 1) * self.hop + self.n_fft
                                         - st.signal_start].copy())
        frames = seg.unfold(0, self.n_fft, self.hop)  # (T, n_fft)
        spec = torch.fft.rfft(frames * self._window)
        feats = (torch.log(spec.real.square() + spec.imag.square() + EPS) - self._mean) / self._std
        st.next_frame = last
        keep = min(last * self.hop, n - 1)  # the end reflection will need sample n-1-half on
        st.signal = st.signal[keep - st.signal_start:]
        st.signal_start = keep
        return feats

    def _no_frames(self) -> torch.Tensor:
        return torch.zeros(0, self.feature_config.n_bins)

    # -- layers -----------------------------------------------------------------------------------
    def _frontend(self, states, feats, final) -> list[torch.Tensor]:
        """Every convolution layer for all streams: new features (T, F) -> new outputs (T', D)."""
        fe = self.model.frontend
        xs = [f.to(self.device).T.unsqueeze(0) if self.two_d else f.to(self.device).T for f in feats]
        for i, ((k, s, p), conv, norm) in enumerate(zip(fe.time_specs, fe.layers, fe.norms)):
            bufs = []
            for st, x, fin in zip(states, xs, final):
                parts = [st.conv[i], x.to(st.conv[i].dtype)]
                if fin:
                    parts.append(torch.zeros(*x.shape[:-1], p, device=self.device, dtype=st.conv[i].dtype))
                bufs.append(torch.cat(parts, -1))
            counts = [max(0, (b.shape[-1] - k) // s + 1) for b in bufs]
            xs = [torch.zeros(0)] * len(states)
            live = [j for j, c in enumerate(counts) if c > 0]
            if live:
                width = max(bufs[j].shape[-1] for j in live)
                batch = torch.stack([F.pad(bufs[j], (0, width - bufs[j].shape[-1])) for j in live])
                if self.two_d:
                    y = F.conv2d(batch, conv.weight, conv.bias, conv.stride, (conv.padding[0], 0))
                else:
                    y = F.conv1d(batch, conv.weight, conv.bias, conv.stride, 0)
                if norm is not None:
                    y = norm(y, torch.ones((), device=y.device, dtype=y.dtype))
                y = clipped_relu(y)
                for row, j in enumerate(live):
                    xs[j] = y[row, ..., : counts[j]]
            for j, st in enumerate(states):
                st.conv[i] = bufs[j][..., counts[j] * s:]
                if counts[j] == 0:
                    xs[j] = bufs[j][..., :0].new_zeros(*self._conv_out_shape(i), 0)
        out = []
        for x in xs:
            x = x.flatten(0, 1) if self.two_d else x  # (C*F', T')
            out.append(x.T)
        return out

    def _conv_out_shape(self, i: int) -> tuple:
        conv = self.model.frontend.layers[i]
        if not self.two_d:
            return (conv.out_channels,)
        freq = self.feature_config.n_bins
        for layer in self.model.frontend.layers[: i + 1]:
            kf, sf = layer.kernel_size[0], layer.stride[0]
            freq = (freq + 2 * (kf // 2) - kf) // sf + 1
        return (conv.out_channels, freq)

    def _recurrent(self, states, xs) -> list[torch.Tensor]:
        """The recurrent layers for all streams with new frames, hidden states carried over."""
        live = [j for j, x in enumerate(xs) if len(x)]
        if not live:
            return [x.new_zeros(0, self.model.config.rnn_hidden) for x in xs]
        lengths = torch.tensor([len(xs[j]) for j in live])
        batch = torch.nn.utils.rnn.pad_sequence([xs[j] for j in live], batch_first=True)
        cpu = self.device.type == "cpu"
        # as offline: fp32 on the CPU even under bf16 autocast
        with torch.autocast("cpu", enabled=False) if cpu else contextlib.nullcontext():
            x = batch.float() if cpu else batch
            for i, (rnn, params) in enumerate(zip(self.model.rnns, self._rnn_params)):
                hx = self._gather_hidden(states, live, i, rnn, x)
                packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
                y, h = torch.func.functional_call(rnn.rnn, params, (packed, hx), strict=False)
                x, _ = pad_packed_sequence(y, batch_first=True, total_length=batch.shape[1])
                for row, j in enumerate(live):
                    states[j].hidden[i] = (tuple(t[:, row: row + 1] for t in h) if isinstance(h, tuple)
                                           else h[:, row: row + 1])
        out = [x.new_zeros(0, x.shape[-1]) for _ in xs]
        for row, j in enumerate(live):
            out[j] = x[row, : lengths[row]]
        return out

    def _gather_hidden(self, states, live, i, rnn, like):
        hs = [states[j].hidden[i] for j in live]
        if all(h is None for h in hs):
            return None
        hidden = rnn.hidden

        def zero():
            return like.new_zeros(1, 1, hidden)

        if isinstance(rnn.rnn, torch.nn.LSTM):
            return (torch.cat([h[0] if h is not None else zero() for h in hs], 1),
                    torch.cat([h[1] if h is not None else zero() for h in hs], 1))
        return torch.cat([h if h is not None else zero() for h in hs], 1)

    def _lookahead(self, states, xs, final) -> list[torch.Tensor]:
        """The row convolution: recurrent outputs (T, H) -> the outputs whose future is known."""
        la = self.model.lookahead
        if la is None:
            return xs
        tau = self.tau
        bufs = []
        for st, x, fin in zip(states, xs, final):
            parts = [st.look.to(x.dtype), x]
            if fin:
                parts.append(x.new_zeros(tau, x.shape[-1]))
            bufs.append(torch.cat(parts))
        counts = [max(0, len(b) - tau) for b in bufs]
        out = [b[:0] for b in bufs]
        live = [j for j, c in enumerate(counts) if c > 0]
        if live:
            width = max(len(bufs[j]) for j in live)
            batch = torch.stack([F.pad(bufs[j].T, (0, width - len(bufs[j]))) for j in live])  # (B, H, T)
            y = clipped_relu(la.conv(batch)).transpose(1, 2)  # (B, T - tau, H)
            for row, j in enumerate(live):
                out[j] = y[row, : counts[j]]
        for st, b, c in zip(states, bufs, counts):
            st.look = b[c:]
        return out

    def _head(self, xs) -> list[np.ndarray]:
        """Fully connected layers and the output for all new frames at once -> log-posteriors."""
        counts = [len(x) for x in xs]
        if not sum(counts):
            return [np.zeros((0, self.vocab_size), np.float32) for _ in xs]
        x = torch.cat([x for x in xs if len(x)])
        for fc in self.model.fcs:
            x = clipped_relu(fc(x))
        log_probs = torch.log_softmax(self.model.output(x).float(), dim=-1).cpu().numpy()
        return np.split(log_probs, np.cumsum(counts)[:-1])
