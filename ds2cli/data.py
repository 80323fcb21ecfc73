"""Training data: a Dataset that turns manifest rows into normalised features and label ids (with
on-the-fly augmentation), a collate function that pads them into a batch, and a batch sampler
that groups utterances of similar length into batches of bounded total audio (SortaGrad first).

Every random choice is a function of (seed, epoch, utterance id or batch index), so an epoch can be
replayed exactly: after a resume, with any number of DataLoader workers, on any rank."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ds2cli.errors import AudioError
from ds2cli.manifest import read_row_audio
from ds2cli.features import FeatureConfig, FeatureStats, log_spectrogram


@dataclass
class Batch:
    """A padded minibatch.

    feats (B, T, F) float32, lengths (B,) int64 frames, targets (sum of target_lengths,) int64 label
    ids concatenated, target_lengths (B,) int64; ids and durations (seconds) per utterance."""

    feats: torch.Tensor
    lengths: torch.Tensor
    targets: torch.Tensor
    target_lengths: torch.Tensor
    ids: list[str]
    texts: list[str]
    durations: list[float]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (id, why) of unreadable rows

    def __len__(self) -> int:
        return len(self.ids)

    def pin_memory(self) -> "Batch":
        self.feats, self.lengths = self.feats.pin_memory(), self.lengths.pin_memory()
        self.targets, self.target_lengths = self.targets.pin_memory(), self.target_lengths.pin_memory()
        return self


class SpeechDataset(torch.utils.data.Dataset):
    """Manifest rows -> (features (T, F), label ids, id, text, duration).

    Items are indexed by `(row index, epoch)` so the augmentation drawn for an utterance depends
    only on (seed, epoch, id), wherever and whenever it is computed. A plain int index means
    epoch 0."""

    def __init__(self, rows: list[dict], tokenizer, feature_config: FeatureConfig,
                 feature_stats: FeatureStats, pipeline=None, seed: int = 0):
        self.rows, self.tokenizer, self.pipeline, self.seed = rows, tokenizer, pipeline, seed
        self.feature_config, self.feature_stats = feature_config, feature_stats

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key):
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        row = self.rows[index]
        utt_id = row["id"]
        try:
            wave = read_row_audio(row, self.feature_config.sample_rate)
        except AudioError as err:
            return Skipped(utt_id, str(err))
        seconds = len(wave) / self.feature_config.sample_rate
        if abs(seconds - float(row["duration"])) > 0.5 + 0.1 * seconds:
            return Skipped(utt_id, f"{row['audio_filepath']}: holds {seconds:.2f} s of audio, its manifest "
                                   f"duration says {float(row['duration']):g} s")
        if self.pipeline is not None:
            wave, _ = self.pipeline.apply_waveform(wave, seed=self.seed, epoch=epoch, utt_id=utt_id)
        feats = log_spectrogram(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)),
                                self.feature_config)
        feats = self.feature_stats.normalise(feats)  # (T, F)
        if self.pipeline is not None:
            feats = self.pipeline.apply_features(feats, seed=self.seed, epoch=epoch, utt_id=utt_id)
        return feats, self.tokenizer.encode(row["text"]), utt_id, row["text"], float(row["duration"])


@dataclass
class Skipped:
    """A dataset item that could not be made: the row's id and why."""

    id: str
    reason: str


def collate(items: list) -> Batch:
    """Pad a list of dataset items into a Batch (zeros after each utterance's last frame). Skipped
    items are left out and listed in `skipped`; the batch may then be empty (len 0)."""
    skipped = [(it.id, it.reason) for it in items if isinstance(it, Skipped)]
    items = [it for it in items if not isinstance(it, Skipped)]
    if not items:
        empty = torch.zeros(0, dtype=torch.long)
        return Batch(torch.zeros(0, 0, 0), empty, empty, empty, [], [], [], skipped)
    lengths = torch.tensor([f.shape[0] for f, *_ in items], dtype=torch.long)
    feats = torch.zeros(len(items), int(lengths.max()), items[0][0].shape[1])
    for i, (f, *_) in enumerate(items):
        feats[i, : f.shape[0]] = f
    targets = torch.tensor([t for _, ids, *_ in items for t in ids], dtype=torch.long)
    target_lengths = torch.tensor([len(ids) for _, ids, *_ in items], dtype=torch.long)
    return Batch(feats, lengths, targets, target_lengths, [it[2] for it in items],
                 [it[3] for it in items], [it[4] for it in items], skipped)


def make_batches(durations: list[float], max_batch_seconds: float, max_batch_size: int = 0,
                 multiple: int = 1, jitter: float = 0.0, seed: int = 0) -> list[list[int]]:
    """Group indices into batches of similar length, in increasing length order.

    A batch's padded audio (size x longest utterance) stays within `max_batch_seconds` (but a
    batch always gets at least `multiple` utterances, however long), it
    holds at most `max_batch_size` utterances (0: no limit) and its size is a multiple of
    `multiple` (the world size, so every rank gets a shard); leftovers that cannot fill a multiple
    at the very end are dropped. `jitter` > 0 perturbs the sort key by up to that fraction, so the batches differ
    from epoch to epoch while padding stays small."""
    order = np.arange(len(durations))
    keys = np.asarray(durations, dtype=np.float64)
    if jitter > 0:
        rng = np.random.default_rng([seed, 7])
        keys = keys * np.exp(rng.uniform(-jitter, jitter, len(keys)))
    order = order[np.lexsort((order, keys))]  # by key, ties by index: deterministic
    batches, current, longest = [], [], 0.0
    for i in order.tolist():
        d = durations[i]
        size = len(current) + 1
        full = (max(longest, d) * size > max_batch_seconds and len(current) >= multiple) or \
               (max_batch_size and size > max_batch_size and len(current) >= multiple)
        if full:
            cut = len(current) // multiple * multiple
            batches.append(current[:cut])
            current = current[cut:]  # leftovers (fewer than `multiple`) start the next batch
            longest = max((durations[j] for j in current), default=0.0)
        current.append(i)
        longest = max(longest, d)
    current = current[: len(current) // multiple * multiple]
    if current:
        batches.append(current)
    return [b for b in batches if b]


class BucketBatchSampler(torch.utils.data.Sampler):
    """Length-bucketed batches of bounded audio, deterministic from (seed, epoch).

    Epoch 0 with `sortagrad` runs the batches shortest first (DS2 §3.3); other epochs shuffle
    the order of the (jittered) batches. With `world_size` > 1 every global batch is split across
    ranks (rank r takes items r, r+W, ...), so all ranks step together on one global batch.
    `start` skips the first batches of the epoch (resume); `longest_first` moves the batch with
    the most padded audio to the front (a memory check). Yields lists of (index, epoch) keys for
    SpeechDataset."""

    def __init__(self, durations: list[float], max_batch_seconds: float, *, max_batch_size: int = 0,
                 seed: int = 0, epoch: int = 0, sortagrad: bool = True, rank: int = 0,
                 world_size: int = 1, start: int = 0, longest_first: bool = False):
        self.durations, self.seed, self.epoch = list(durations), seed, epoch
        self.rank, self.world_size, self.start = rank, world_size, start
        self.longest_first = longest_first
        # per-rank limits, global batches: W times the audio and utterances of one rank
        self.global_batches = self._plan(max_batch_seconds * world_size, max_batch_size * world_size,
                                         sortagrad)

    def _plan(self, seconds: float, size: int, sortagrad: bool) -> list[list[int]]:
        if sortagrad and self.epoch == 0:
            batches = make_batches(self.durations, seconds, size, self.world_size)
        else:
            # jitter 0.03 pads ~3% (0.1 padded ~10% on the tiny corpus) yet varies the batches
            batches = make_batches(self.durations, seconds, size, self.world_size, jitter=0.03,
                                   seed=self.seed * 1000003 + self.epoch)
            perm = np.random.default_rng([self.seed, self.epoch, 11]).permutation(len(batches))
            batches = [batches[i] for i in perm]
        if self.longest_first and batches:
            cost = [len(b) * max(self.durations[i] for i in b) for b in batches]
            batches.insert(0, batches.pop(int(np.argmax(cost))))
        return batches

    def __len__(self) -> int:
        return max(0, len(self.global_batches) - self.start)

    def __iter__(self):
        for batch in self.global_batches[self.start:]:
            yield [(i, self.epoch) for i in batch[self.rank::self.world_size]]

    def global_batch_sizes(self) -> list[int]:
        """Utterances in each remaining global batch (for loss normalisation across ranks)."""
        return [len(b) for b in self.global_batches[self.start:]]

    def audio_seconds(self) -> float:
        """Audio in the remaining batches of this epoch, all ranks together."""
        return sum(self.durations[i] for b in self.global_batches[self.start:] for i in b)


def drop_impossible(rows: list[dict], tokenizer, frames_to_outputs, hop_seconds: float):
    """Split rows into those CTC can align and those whose transcript needs more output frames
    than the audio gives (they would make the loss infinite). `frames_to_outputs` maps input frame
    counts (tensor) to output frame counts."""
    from ds2cli.ctc import min_ctc_frames

    frames = torch.tensor([int(r["duration"] / hop_seconds) + 1 for r in rows], dtype=torch.long)
    outputs = frames_to_outputs(frames).tolist() if rows else []
    keep, drop = [], []
    for row, n in zip(rows, outputs):
        (keep if min_ctc_frames(tokenizer.encode(row["text"])) <= n else drop).append(row)
    return keep, drop


def steps_per_epoch(n_batches: int, accumulate: int) -> int:
    return math.ceil(n_batches / max(1, accumulate))
