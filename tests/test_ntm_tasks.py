"""The five task generators against the paper's descriptions, and the N-gram optimal estimator."""
import math

import pytest
import torch

from ds2cli.errors import DS2Error
from ds2cli.ntm.tasks import (AssociativeRecallTask, CopyTask, NGramTask, PrioritySortTask, RepeatCopyTask,
                              ngram_optimal_cost, task_from_dict)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


def test_copy_layout(gen):
    task = CopyTask()
    b = task.batch(4, gen, 7)
    assert b.inputs.shape == (15, 4, 9) and b.targets.shape == (15, 4, 8) and b.mask.shape == (15, 4)
    bits = b.inputs[:7, :, :8]
    assert set(bits.unique().tolist()) == {0.0, 1.0}
    assert torch.all(b.inputs[:7, :, 8] == 0) and torch.all(b.inputs[7, :, 8] == 1)  # delimiter channel
    assert torch.all(b.inputs[7, :, :8] == 0) and torch.all(b.inputs[8:] == 0)  # no input while answering
    assert torch.equal(b.targets[8:], bits)
    assert b.mask[8:].all() and not b.mask[:8].any()


def test_copy_training_lengths_and_padding(gen):
    task = CopyTask()
    b = task.batch(64, gen)
    lengths = b.mask.sum(0)  # scored steps = sequence length
    assert lengths.min() >= 1 and lengths.max() <= 20 and len(lengths.unique()) > 5
    for col in range(5):
        L = int(lengths[col])
        assert b.inputs[L, col, 8] == 1  # delimiter right after the sequence
        assert not b.mask[2 * L + 1:, col].any()  # padding is never scored


def test_repeat_copy_layout_and_normalisation(gen):
    task = RepeatCopyTask()
    counts = torch.tensor([task.normalise_repeats(r) for r in range(1, 11)])
    assert abs(counts.mean().item()) < 1e-6 and abs(counts.var(unbiased=False).item() - 1) < 1e-6
    b = task.batch(2, gen, (3, 4))
    T = 3 + 1 + 12 + 1
    assert b.inputs.shape == (T, 2, 10) and b.targets.shape == (T, 2, 9)
    bits = b.inputs[:3, :, :8]
    assert torch.all(b.inputs[3, :, 8] == 1)
    torch.testing.assert_close(b.inputs[3, :, 9], torch.full((2,), task.normalise_repeats(4)))
    assert torch.equal(b.targets[4:16, :, :8], bits.repeat(4, 1, 1))
    assert torch.all(b.targets[:T - 1, :, 8] == 0) and torch.all(b.targets[T - 1, :, 8] == 1)  # end marker
    assert torch.all(b.targets[T - 1, :, :8] == 0)
    assert b.mask[4:].all() and not b.mask[:4].any()
    assert task.parse_length("10x20") == (10, 20) and task.format_length((10, 20)) == "10x20"
    with pytest.raises(DS2Error, match="LENGTHxREPEATS"):
        task.parse_length("10")


def test_associative_recall_target_follows_query(gen):
    task = AssociativeRecallTask()
    for k in (2, 6, 12):
        b = task.batch(8, gen, k)
        T = k * 4 + 5 + 3
        assert b.inputs.shape == (T, 8, 8) and b.targets.shape == (T, 8, 6)
        for col in range(8):
            x = b.inputs[:, col]
            # Item delimiters lead each item; query delimiters bound the query.
            assert x[:, 6].nonzero().flatten().tolist() == [4 * i for i in range(k)]
            assert x[:, 7].nonzero().flatten().tolist() == [4 * k, 4 * k + 4]
            items = [x[4 * i + 1:4 * i + 4, :6] for i in range(k)]
            query = x[4 * k + 1:4 * k + 4, :6]
            q = [i for i in range(k - 1) if torch.equal(items[i], query)]
            assert q, "the query is one of the items (not the last)"
            assert torch.equal(b.targets[T - 3:, col], items[q[0] + 1])
            assert b.mask[T - 3:, col].all() and not b.mask[:T - 3, col].any()
    sizes = {int(task.sample(gen)[0][:, 6].sum()) for _ in range(200)}
    assert sizes == set(range(2, 7))


def test_priority_sort_target_is_top_16_by_priority(gen):
    task = PrioritySortTask()
    b = task.batch(4, gen)
    assert b.inputs.shape == (37, 4, 10) and b.targets.shape == (37, 4, 8)
    for col in range(4):
        x = b.inputs[:, col]
        prio = x[:20, 8]
        assert prio.min() >= -1 and prio.max() <= 1
        assert x[20, 9] == 1 and x[:20, 9].sum() == 0
        order = torch.argsort(prio, descending=True)[:16]
        assert torch.equal(b.targets[21:, col], x[order, :8])
    assert b.mask[21:].all() and not b.mask[:21].any()


def plain_optimal(bits, c=5):
    """The paper's estimator, one bit at a time with dictionaries."""
    total = 0.0
    counts = {}
    for t in range(c, len(bits)):
        ctx = tuple(bits[t - c:t])
        n0, n1 = counts.get(ctx, (0, 0))
        p1 = (n1 + 0.5) / (n1 + n0 + 1)
        total -= math.log2(p1 if bits[t] == 1 else 1 - p1)
        counts[ctx] = (n0 + (bits[t] == 0), n1 + (bits[t] == 1))
    return total


def test_ngram_layout_and_optimal_estimator(gen):
    task = NGramTask()
    bits = task.bits(6, gen)
    assert bits.shape == (6, 200)
    b = task.batch_from_bits(bits)
    assert b.inputs.shape == (199, 6, 1)
    assert torch.equal(b.inputs[1:, :, 0], b.targets[:-1, :, 0])  # input is the previous target
    assert int(b.mask[:, 0].sum()) == 195  # every bit after the first 5 is scored
    fast = ngram_optimal_cost(bits)
    for row in range(6):
        assert abs(fast[row].item() - plain_optimal([int(v) for v in bits[row]])) < 1e-3
    # By hand: 0000000 has context 00000 twice; first P(0) = 1/2, then (1 + 1/2) / 2 = 3/4.
    seq = torch.zeros(1, 7)
    assert abs(ngram_optimal_cost(seq).item() - (1 - math.log2(0.75))) < 1e-6
    # Data from a 6-gram model is predictable: the optimal estimator beats 1 bit per bit.
    assert ngram_optimal_cost(task.bits(200, gen)).mean() < 0.9 * 195


def test_ngram_probabilities_are_beta_half_half(gen):
    task = NGramTask()
    # Long sequences from one model: the empirical P(1 | context) spreads towards 0 and 1 (U-shaped).
    bits = task.bits(200, gen, 2000)
    ctx = (bits.long().unfold(1, 5, 1)[:, :-1] * (2 ** torch.arange(4, -1, -1))).sum(-1)
    nxt = bits[:, 5:]
    p = torch.stack([(nxt * (ctx == c)).sum(1) / (ctx == c).sum(1).clamp_min(1) for c in range(32)], 1)
    extreme = ((p < 0.2) | (p > 0.8)).float().mean()
    assert 0.45 < extreme < 0.7  # Beta(1/2, 1/2) puts 59% of its mass below 0.2 or above 0.8 (uniform: 40%)


def test_task_round_trip_and_seed_reproducible():
    for task in (CopyTask(max_len=5), RepeatCopyTask(max_repeats=3), AssociativeRecallTask(max_items=4),
                 NGramTask(length=50), PrioritySortTask(num_inputs=6, num_outputs=4)):
        again = task_from_dict(task.to_dict())
        assert again == task
        b1 = task.batch(3, torch.Generator().manual_seed(5))
        b2 = again.batch(3, torch.Generator().manual_seed(5))
        assert torch.equal(b1.inputs, b2.inputs) and torch.equal(b1.targets, b2.targets)
    with pytest.raises(DS2Error, match="unknown task"):
        task_from_dict({"task": "sorting"})


def test_bad_task_options_and_lengths():
    with pytest.raises(DS2Error, match="min-len"):
        CopyTask(min_len=5, max_len=3)
    with pytest.raises(DS2Error, match="at least 2 items"):
        AssociativeRecallTask(min_items=1)
    with pytest.raises(DS2Error, match="more than 5 bits"):
        NGramTask().parse_length("5")
    with pytest.raises(DS2Error, match="whole number"):
        CopyTask().parse_length("ten")
