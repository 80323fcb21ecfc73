"""One GRU layer's recurrence, uni- or bidirectional, with a hand-written backward, for
training on the CPU.

torch's CPU GRU differentiates one small matrix product per time step and direction and
accumulates the recurrent weight gradient step by step. Here both directions advance together
(one batched product per step), the backward keeps only the recurrent chain in its loop, and the
weight and bias gradients are one large product over all steps afterwards. The input projection
(with its batch norm) stays outside, in ordinary autograd.

Equations as torch.nn.GRU (gates r, z, n in that order):
    r = sigmoid(xr + W_hr h + b_hr)    z = sigmoid(xz + W_hz h + b_hz)
    n = tanh(xn + r * (W_hn h + b_hn))    h' = (1 - z) * n + z * h
The reverse direction reads the padded batch from its last frame backwards with its state held
at zero on padded frames, so each utterance's reverse pass starts at its own last real frame.
"""
from __future__ import annotations

import torch


def _step_order(x: torch.Tensor) -> torch.Tensor:
    """(B, T, D, ...) -> (D, T, B, ...): direction 0 in time order, direction 1 reversed."""
    directions = [x[:, :, 0]] + ([x[:, :, 1].flip(1)] if x.shape[2] > 1 else [])
    return torch.stack([d.transpose(0, 1) for d in directions])


class _GRULayer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xi: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, steps, dirs, gates = xi.shape
        hidden = gates // 3
        x = _step_order(xi)  # (D, T, B, 3H)
        keep = _step_order(mask[:, :, None, None].expand(batch, steps, dirs, 1).to(xi.dtype))  # (D, T, B, 1)
        w_t = w_hh.transpose(1, 2)  # (D, H, 3H)
        bias = b_hh[:, None, :].expand(dirs, batch, gates)
        hs = xi.new_zeros(dirs, steps + 1, batch, hidden)  # hs[:, 0] is the zero initial state
        gh = xi.new_empty(dirs, steps, batch, gates)  # W_hh h + b_hh
        rz = xi.new_empty(dirs, steps, batch, 2 * hidden)
        n = xi.new_empty(dirs, steps, batch, hidden)
        for t in range(steps):
            torch.baddbmm(bias, hs[:, t], w_t, out=gh[:, t])
            torch.add(x[:, t, :, : 2 * hidden], gh[:, t, :, : 2 * hidden], out=rz[:, t]).sigmoid_()
            torch.addcmul(x[:, t, :, 2 * hidden:], rz[:, t, :, :hidden], gh[:, t, :, 2 * hidden:],
                          out=n[:, t]).tanh_()
            torch.lerp(n[:, t], hs[:, t], rz[:, t, :, hidden:], out=hs[:, t + 1]).mul_(keep[:, t])
        ctx.save_for_backward(w_hh)
        ctx.intermediates = hs, gh, rz, n, keep
        out = hs[0, 1:].transpose(0, 1)  # (B, T, H)
        return out + hs[1, 1:].flip(0).transpose(0, 1) if dirs > 1 else out.clone()

    @staticmethod
    def backward(ctx, dout: torch.Tensor):
        (w_hh,) = ctx.saved_tensors
        hs, gh, rz, n, keep = ctx.intermediates
        del ctx.intermediates
        dirs, steps, batch, hidden = n.shape
        dout = _step_order(dout[:, :, None].expand(batch, steps, dirs, hidden))  # (D, T, B, H)
        r, z, h_prev = rz[..., :hidden], rz[..., hidden:], hs[:, :-1]
        # every factor that does not depend on the incoming gradient, for all steps at once
        to_n = (1 - z) * (1 - n * n) * keep  # dL/d(n pre-activation) = dh * to_n
        to_z = (h_prev - n) * z * (1 - z) * keep  # dL/d(z pre-activation) = dh * to_z
        z_kept = z * keep
        to_r = gh[..., 2 * hidden:] * r * (1 - r)  # dL/d(r pre-activation) = dn * to_r
        dgh = torch.empty_like(gh)  # dL/d(W_hh h + b_hh), per step
        dn = torch.empty_like(n)  # dL/d(n pre-activation), per step
        carry = torch.zeros_like(hs[:, 0])
        for t in range(steps - 1, -1, -1):
            dh = dout[:, t] + carry
            torch.mul(dh, to_n[:, t], out=dn[:, t])
            torch.mul(dn[:, t], to_r[:, t], out=dgh[:, t, :, :hidden])
            torch.mul(dh, to_z[:, t], out=dgh[:, t, :, hidden: 2 * hidden])
            torch.mul(dn[:, t], r[:, t], out=dgh[:, t, :, 2 * hidden:])
            carry = torch.baddbmm(dh * z_kept[:, t], dgh[:, t], w_hh)
        flat = dgh.view(dirs, steps * batch, -1)
        dw_hh = torch.bmm(flat.transpose(1, 2), h_prev.reshape(dirs, steps * batch, hidden))
        db_hh = flat.sum(1)
        dgh[..., 2 * hidden:] = dn  # now dL/d(input projection), in step order
        dxi = dgh.transpose(1, 2)  # (D, B, T, 3H)
        if dirs > 1:
            dxi = torch.stack([dxi[0], dxi[1].flip(1)], 2)
        else:
            dxi = dxi[0].unsqueeze(2)
        return dxi, dw_hh, db_hh, None


def gru_layer(xi: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A GRU layer's recurrences from a zero state, directions summed.

    xi (B, T, D, 3H): input projections W_ih x_t + b_ih of direction 0 (forward) and, when D = 2,
    direction 1 (reverse); w_hh (D, 3H, H); b_hh (D, 3H); mask (B, T), True on real frames
    -> (B, T, H), meaningful on real frames only. Runs in the weights' dtype."""
    return _GRULayer.apply(xi.to(w_hh.dtype), w_hh, b_hh, mask)
