"""Training speed of ds2cli's NTM against loudinthecloud/pytorch-ntm, side by side in one run.

Same configuration for both: copy task (8 bits, lengths 1-20), LSTM controller of 100, one read
and one write head, memory 128 x 20, RMSProp lr 1e-4 / momentum 0.9 / alpha 0.95, gradient
values clipped to [-10, 10], the same pre-generated batches (one length per batch, as the peer
requires). Rounds alternate between the two so that load from other users of the machine
falls on both alike; we report the median over rounds.

The peer is imported from a local copy of its public repository (never committed here):
    git clone https://github.com/loudinthecloud/pytorch-ntm PEER
    python -m benchmarks.ntm_speed --peer PEER      # or NTM_PEER=PEER; without it, ds2cli alone
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from benchmarks.paths import shown, stamped
from ds2cli.fileio import write_json
from ds2cli.ntm.tasks import TaskBatch, CopyTask
from ds2cli.ntm.fit import NTMTrainConfig, new_run, paper_configs, train_step

LOAD_CAVEAT = ("Measured on the project's 2-core CPU (idle but for one other training job on the other "
               "core), this process pinned to one core with one torch thread for both implementations. "
               "Rounds alternate between the two so that both see the same conditions; the ratio is the "
               "number to read.")


def make_batches(n: int, batch_size: int, seed: int) -> list[tuple[int, torch.Tensor]]:
    """n copy batches as (length, bits (L, B, 8)), one length per batch."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        L = int(torch.randint(1, 21, (1,), generator=gen))
        out.append((L, torch.randint(0, 2, (L, batch_size, 8), generator=gen).float()))
    return out


def ours_batch(L: int, bits: torch.Tensor) -> TaskBatch:
    B = bits.shape[1]
    x = torch.zeros(2 * L + 1, B, 9)
    x[:L, :, :8] = bits
    x[L, :, 8] = 1.0
    y = torch.zeros(2 * L + 1, B, 8)
    y[L + 1:] = bits
    m = torch.zeros(2 * L + 1, B, dtype=torch.bool)
    m[L + 1:] = True
    return TaskBatch(x, y, m)


def peer_batch(L: int, bits: torch.Tensor):
    B = bits.shape[1]
    x = torch.zeros(L + 1, B, 9)
    x[:L, :, :8] = bits
    x[L, :, 8] = 1.0
    return x, bits.clone()


class Peer:
    """pytorch-ntm's model and its train.py `train_batch` (copied in spirit: same ops)."""

    def __init__(self, path: Path, seed: int):
        sys.path.insert(0, str(path))
        from ntm.aio import EncapsulatedNTM  # noqa: E402  (the peer's package)

        torch.manual_seed(seed)
        self.net = EncapsulatedNTM(9, 8, 100, 1, 1, 128, 20)
        self.criterion = torch.nn.BCELoss()
        self.optimizer = torch.optim.RMSprop(self.net.parameters(), momentum=0.9, alpha=0.95, lr=1e-4)

    def train_batch(self, X: torch.Tensor, Y: torch.Tensor) -> None:
        net = self.net
        self.optimizer.zero_grad()
        outp_len, batch_size, _ = Y.size()
        net.init_sequence(batch_size)
        for i in range(X.size(0)):
            net(X[i])
        y_out = torch.zeros(Y.size())
        for i in range(outp_len):
            y_out[i], _ = net()
        loss = self.criterion(y_out, Y)
        loss.backward()
        for p in net.parameters():
            if p.grad is not None:
                p.grad.data.clamp_(-10, 10)
        self.optimizer.step()
        # The peer binarises with a per-element Python lambda (`apply_`); we use the vectorised
        # equivalent, which only makes the peer faster (a conservative comparison).
        y_bin = (y_out.detach() >= 0.5).float()
        torch.sum(torch.abs(y_bin - Y)).item()


def time_it(fn, batches) -> float:
    t0 = time.perf_counter()
    for b in batches:
        fn(b)
    return time.perf_counter() - t0


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer", default=os.environ.get("NTM_PEER"),
                    help="local copy of loudinthecloud/pytorch-ntm (env NTM_PEER)")
    ap.add_argument("--peer-commit", default=os.environ.get("NTM_PEER_COMMIT"),
                    help="the peer's git commit, recorded in the result (env NTM_PEER_COMMIT)")
    ap.add_argument("--batch-sizes", default="1,16,64")
    ap.add_argument("--sequences", type=int, default=128, help="sequences per round and batch size")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/ntm_speed.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    peer_path = Path(args.peer) if args.peer else None
    have_peer = peer_path is not None and (peer_path / "ntm" / "aio.py").is_file()
    if not have_peer:
        print(f"peer not found at {peer_path} (set --peer or NTM_PEER); timing ds2cli alone")

    task = CopyTask()
    model_cfg, lr = paper_configs(task, "ntm", "lstm")
    results = []
    for bs in [int(v) for v in args.batch_sizes.split(",")]:
        run = new_run(task, model_cfg, NTMTrainConfig(lr=lr, batch_size=bs, seed=0))
        peer = Peer(peer_path, 0) if have_peer else None
        n_batches = max(1, args.sequences // bs)
        raw = make_batches(n_batches, bs, seed=bs)
        ours_b = [ours_batch(L, bits) for L, bits in raw]
        peer_b = [peer_batch(L, bits) for L, bits in raw]
        # Warm-up (allocator, first-call overheads) for both.
        time_it(lambda b: train_step(run, b), ours_b[:3])
        if peer:
            time_it(lambda b: peer.train_batch(*b), peer_b[:3])
        ours_t, peer_t = [], []
        for _ in range(args.rounds):
            ours_t.append(time_it(lambda b: train_step(run, b), ours_b) / (n_batches * bs))
            if peer:
                peer_t.append(time_it(lambda b: peer.train_batch(*b), peer_b) / (n_batches * bs))
        row = {"batch_size": bs, "sequences_per_round": n_batches * bs, "rounds": args.rounds,
               "ours_ms_per_sequence": 1000 * statistics.median(ours_t),
               "ours_sequences_per_second": 1 / statistics.median(ours_t),
               "ours_rounds_ms": [1000 * t for t in ours_t]}
        if peer:
            row.update({"peer_ms_per_sequence": 1000 * statistics.median(peer_t),
                        "peer_sequences_per_second": 1 / statistics.median(peer_t),
                        "peer_rounds_ms": [1000 * t for t in peer_t],
                        "speedup": statistics.median(peer_t) / statistics.median(ours_t)})
        results.append(row)
        msg = f"batch {bs:>3}: ours {row['ours_ms_per_sequence']:.2f} ms/seq"
        if peer:
            msg += f", pytorch-ntm {row['peer_ms_per_sequence']:.2f} ms/seq, speed-up {row['speedup']:.1f}x"
        print(msg, flush=True)

    base = next((r for r in results if r["batch_size"] == 1), None)
    if base and "peer_ms_per_sequence" in base:
        for r in results:  # our batched training against the peer's usual batch-1 training
            r["speedup_vs_peer_batch1"] = base["peer_ms_per_sequence"] / r["ours_ms_per_sequence"]
    out = {
        "benchmark": "ntm_speed",
        "what": "training sequences per second, copy task, paper configuration (LSTM 100, 1+1 heads, 128x20)",
        "peer": "loudinthecloud/pytorch-ntm (local copy, not committed)" if have_peer else None,
        "peer_path": shown(peer_path, keep=1) if have_peer else None,
        "peer_commit": args.peer_commit,
        "peer_train_step": "its train.py train_batch (same ops), with the per-element apply_ lambda "
                           "binarisation replaced by a vectorised comparison (favours the peer)",
        "torch_threads": args.threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "caveat": LOAD_CAVEAT,
        "results": results,
    }
    write_json(args.out, stamped(out))
    print(f"wrote {args.out}")
    return out


if __name__ == "__main__":
    main()
