"""The GRU recurrence's hand-written backward against torch.nn.GRU, in float64."""
import pytest
import torch
from torch import nn

from ds2cli.model import reverse_within_lengths, time_mask
from ds2cli.recurrence import gru_layer


@pytest.mark.parametrize("directions", [1, 2])
def test_gru_layer_matches_torch_gru_outputs_and_gradients(directions):
    torch.manual_seed(0)
    steps, batch, inputs, hidden = 9, 3, 4, 5
    grus = [nn.GRU(inputs, hidden, batch_first=True).double() for _ in range(directions)]
    x = torch.randn(batch, steps, inputs, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([9, 3, 6])
    mask = time_mask(lengths, steps)
    weight = torch.linspace(-1, 1, hidden, dtype=torch.float64)

    # reference: each direction separately, the reverse one on each utterance reversed within its length
    ref = grus[0](x)[0]
    if directions == 2:
        ref = ref + reverse_within_lengths(grus[1](reverse_within_lengths(x, lengths))[0], lengths)
    ref = ref * mask[..., None]
    params = [p for g in grus for p in (g.weight_ih_l0, g.bias_ih_l0, g.weight_hh_l0, g.bias_hh_l0)]
    ref_grads = torch.autograd.grad((ref * weight).sum(), [x, *params])

    w_ih = torch.stack([g.weight_ih_l0 for g in grus])
    b_ih = torch.stack([g.bias_ih_l0 for g in grus])
    w_hh = torch.stack([g.weight_hh_l0 for g in grus])
    b_hh = torch.stack([g.bias_hh_l0 for g in grus])
    xi = torch.einsum("bti,dgi->btdg", x, w_ih) + b_ih
    out = gru_layer(xi, w_hh, b_hh, mask) * mask[..., None]
    grads = torch.autograd.grad((out * weight).sum(), [x, w_ih, b_ih, w_hh, b_hh])

    assert torch.allclose(out, ref, atol=1e-12)
    assert torch.allclose(grads[0], ref_grads[0], atol=1e-12)
    for d in range(directions):
        for i, ours in enumerate(grads[1:]):
            assert torch.allclose(ours[d], ref_grads[1 + 4 * d + i], atol=1e-12), (d, i)
