"""Free Spoken Digit Dataset as connected-digit utterances (TIDIGITS style).

FSDD clips (`recordings/{digit}_{speaker}_{index}.wav`, 8 kHz, one word each) are spliced, 1-7
clips of ONE speaker with 50-300 ms gaps of silence or very low noise (and 50-200 ms at the
edges, or none: a quarter of the edges are cut tight, as FSDD ships its clips), into 16 kHz utterances
with exact transcripts ("three one four"). Splits follow the official one: clip index 0-4 is
test; of the official train clips (5-49), index 5-9 is dev (DEV_INDICES) and 10-49 train, so
no clip is heard in two splits. Every usable clip is used `uses_per_clip` times in its split
(in shuffled rounds), so the default makes ~2,100 train, ~270 dev and ~270 test utterances.

Ground-truth word timings (each clip's start and end in the spliced audio, in seconds) go to
work_dir/fsdd_word_times.jsonl, one {"id", "words": [{"word", "start", "end", "clip"}]} per
utterance ("clip": the source file's stem, e.g. "3_theo_12"). The clips are trimmed tight, so
a clip's span is the word's span.
Unreadable or misnamed clips become `Skip`s; utterances are made from the clips that remain.

Options: uses_per_clip (4), min_digits (1), max_digits (7)."""
from __future__ import annotations

import functools
import hashlib
import json
import math
import multiprocessing
import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ds2cli.data_prep.common import Collected, Item, Skip
from ds2cli.audio import SAMPLE_RATE, audio_info, read_audio, write_audio
from ds2cli.errors import AudioError, DS2Error
from ds2cli.fileio import write_jsonl

LANGUAGE = "en"
DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEST_INDICES = range(0, 5)  # the official FSDD test set
DEV_INDICES = range(5, 10)  # carved from the official training clips
GAP_S = (0.05, 0.3)  # between words
EDGE_S = (0.05, 0.2)  # before the first and after the last word
TIGHT_EDGES = 0.25  # share of utterance edges cut tight (no silence), as FSDD ships its clips
NOISE_STD = (1e-5, 5e-4)  # level of the gaps' noise, when not pure silence
SILENT_GAPS = 0.3  # share of utterances whose gaps are digital silence
WORD_TIMES = "fsdd_word_times.jsonl"
_NAME = re.compile(r"^([0-9])_([A-Za-z0-9-]+)_([0-9]+)$")


@dataclass(frozen=True)
class Clip:
    path: str
    digit: int
    speaker: str
    index: int
    samples: int  # length at 16 kHz

    @property
    def split(self) -> str:
        return "test" if self.index in TEST_INDICES else "dev" if self.index in DEV_INDICES else "train"


@dataclass(frozen=True)
class Spliced:
    """One planned utterance: clips and the gaps around them (samples at 16 kHz)."""

    clips: tuple[Clip, ...]
    gaps: tuple[int, ...]  # len(clips) + 1: before the first clip, between clips, after the last
    noise_std: float  # 0 = silent gaps
    noise_seed: int

    @property
    def text(self) -> str:
        return " ".join(DIGITS[c.digit] for c in self.clips)

    def word_times(self) -> list[dict]:
        words, at = [], self.gaps[0]
        for clip, gap in zip(self.clips, self.gaps[1:]):
            # 5 decimals (10 us) pin the sample exactly (16 kHz: 62.5 us)
            words.append({"word": DIGITS[clip.digit], "start": round(at / SAMPLE_RATE, 5),
                          "end": round((at + clip.samples) / SAMPLE_RATE, 5), "clip": Path(clip.path).stem})
            at += clip.samples + gap
        return words

    def digest(self) -> str:
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


def collect(corpus_dir: Path | None, work_dir: Path, *, jobs: int = 1, seed: int = 0,
            uses_per_clip: int = 4, min_digits: int = 1, max_digits: int = 7, quiet: bool = False,
            **unknown) -> Collected:
    """Splice FSDD clips in `corpus_dir` (the folder holding recordings/, or recordings/ itself)
    into utterances under work_dir/audio/fsdd, making only what is not on disk yet. `quiet`
    hides the progress bar."""
    if unknown:
        raise DS2Error(f"fsdd: unknown option(s) {', '.join(sorted(unknown))} "
                       "(expected uses_per_clip, min_digits, max_digits)")
    if corpus_dir is None:
        raise DS2Error("fsdd: give the FSDD folder (the one holding recordings/{digit}_{speaker}_{index}.wav)")
    uses, lo, hi = (_positive(n, v) for n, v in (("uses_per_clip", uses_per_clip),
                                                  ("min_digits", min_digits), ("max_digits", max_digits)))
    if hi < lo:
        raise DS2Error(f"fsdd: max_digits ({hi}) is smaller than min_digits ({lo})")
    corpus_dir = Path(corpus_dir)
    rec_dir = corpus_dir / "recordings" if (corpus_dir / "recordings").is_dir() else corpus_dir
    clips, skipped = find_clips(rec_dir)
    if not clips:
        raise DS2Error(f"{rec_dir}: no usable FSDD clips ({{digit}}_{{speaker}}_{{index}}.wav)"
                       + (f"; {len(skipped)} skipped" if skipped else ""))

    groups: dict[tuple[str, str], list[Clip]] = {}
    for clip in clips:
        groups.setdefault((clip.split, clip.speaker), []).append(clip)
    audio_dir = Path(work_dir) / "audio" / "fsdd"
    planned: dict[str, list[tuple[str, str, Spliced]]] = {"train": [], "dev": [], "test": []}
    for (split, speaker), group in sorted(groups.items()):
        rng = random.Random(f"fsdd:{seed}:{split}:{speaker}")  # a group's plan does not depend on the others
        for k, utt in enumerate(plan_group(group, rng, uses, lo, hi)):
            uid = f"fsdd-{split}-{speaker}-{k:04d}"
            planned[split].append((uid, str(audio_dir / split / f"{uid}_{utt.digest()}.wav"), utt))

    todo = [(path, utt) for rows in planned.values() for _, path, utt in rows if not _complete(path)]
    failed = _build_all(todo, jobs, quiet)
    skipped += failed
    bad = {s.path for s in failed}
    splits = {split: [Item(path, utt.text, uid, speaker=utt.clips[0].speaker)
                      for uid, path, utt in rows if path not in bad]
              for split, rows in planned.items()}
    write_jsonl(Path(work_dir) / WORD_TIMES,
                ({"id": uid, "words": utt.word_times()}
                 for rows in planned.values() for uid, path, utt in rows if path not in bad))
    return Collected(splits=splits, skipped=skipped, language=LANGUAGE)


def find_clips(rec_dir: Path) -> tuple[list[Clip], list[Skip]]:
    """Every `{digit}_{speaker}_{index}.wav` in `rec_dir` whose header reads; the rest as Skips."""
    clips, skipped = [], []
    for path in sorted(rec_dir.glob("*.wav")):
        match = _NAME.match(path.stem)
        if not match:
            skipped.append(Skip("unrecognised file name", str(path),
                                f"{path}: not an FSDD name ({{digit}}_{{speaker}}_{{index}}.wav)"))
            continue
        try:
            info = audio_info(path)
        except AudioError as err:
            reason = str(err).split(": ", 1)[1].split(" (")[0]
            skipped.append(Skip(reason, str(path), str(err)))
            continue
        samples = math.ceil(info.frames * SAMPLE_RATE / info.sample_rate)
        clips.append(Clip(str(path), int(match[1]), match[2], int(match[3]), samples))
    return clips, skipped


def plan_group(clips: list[Clip], rng: random.Random, uses: int, lo: int, hi: int) -> list[Spliced]:
    """Cut `uses` shuffled rounds of one speaker's clips into utterances of `lo`-`hi` clips
    (the last may be shorter)."""
    order: list[Clip] = []
    for _ in range(uses):
        round_ = sorted(clips, key=lambda c: c.path)
        rng.shuffle(round_)
        order += round_
    out, start = [], 0
    while start < len(order):
        n = min(rng.randint(lo, hi), len(order) - start)
        chosen = tuple(order[start:start + n])
        start += n
        gaps = ([_edge(rng)] + [_samples(rng.uniform(*GAP_S)) for _ in range(n - 1)] + [_edge(rng)])
        noise = 0.0 if rng.random() < SILENT_GAPS else round(rng.uniform(*NOISE_STD), 6)
        out.append(Spliced(chosen, tuple(gaps), noise, rng.getrandbits(32)))
    return out


def _edge(rng: random.Random) -> int:
    """Silence before the first or after the last word: none (a tight cut) or EDGE_S seconds."""
    return 0 if rng.random() < TIGHT_EDGES else _samples(rng.uniform(*EDGE_S))


def splice(utt: Spliced) -> np.ndarray:
    """The utterance's audio. shape = (sum(clip samples) + sum(gaps),) float32"""
    rng = np.random.default_rng(utt.noise_seed)
    parts = [_gap(utt.gaps[0], utt.noise_std, rng)]
    for clip, gap in zip(utt.clips, utt.gaps[1:]):
        wave = _read_clip(clip.path)
        # resampling may differ from the planned length by a sample; keep the plan (and the timings) exact
        wave = np.pad(wave, (0, max(0, clip.samples - wave.size)))[:clip.samples]
        parts += [wave, _gap(gap, utt.noise_std, rng)]
    return np.concatenate(parts)


def _gap(n: int, std: float, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(n).astype(np.float32)  # drawn even when silent: same stream either way
    return noise * std if std else np.zeros(n, np.float32)


@functools.lru_cache(maxsize=4096)  # a clip is used several times; ~30 KB each at 16 kHz
def _read_clip(path: str) -> np.ndarray:
    return read_audio(path, SAMPLE_RATE)


def _build(task: tuple[str, Spliced]) -> Skip | None:
    path, utt = task
    try:
        write_audio(path, splice(utt), SAMPLE_RATE)
    except AudioError as err:
        reason = str(err).split(": ", 1)[1].split(" (")[0]
        return Skip(reason, path, f"{path}: not made: {err}")
    return None


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)  # `jobs` processes already fill the cores


def _build_all(todo: list[tuple[str, Spliced]], jobs: int, quiet: bool = False) -> list[Skip]:
    """Write every utterance in `todo` (in `jobs` processes); return the failures."""
    import torch

    from ds2cli.progress import progress

    if not todo:
        return []
    bar = progress(total=len(todo), desc="splicing fsdd", quiet=quiet, unit="utt")
    results = []
    if jobs > 1 and len(todo) > 64:
        with multiprocessing.get_context("spawn").Pool(jobs, initializer=_init_worker) as pool:
            for result in pool.imap(_build, todo, chunksize=16):  # in order: neighbours share clips
                results.append(result)
                bar.update(1)
    else:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # torch's resampling on 2+ threads is far slower on a busy machine
        try:
            for task in todo:
                results.append(_build(task))
                bar.update(1)
        finally:
            torch.set_num_threads(threads)
            _read_clip.cache_clear()
    bar.close()
    return [r for r in results if r is not None]


def _complete(path: str) -> bool:
    """A finished file from a previous run (files are written atomically; verify anyway)."""
    try:
        audio_info(path)
        return True
    except AudioError:
        return False


def _samples(seconds: float) -> int:
    return int(round(seconds * SAMPLE_RATE))


def _positive(name: str, value) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise DS2Error(f"fsdd: {name} must be a whole number, got {value!r}") from None
    if n < 1:
        raise DS2Error(f"fsdd: {name} must be at least 1, got {n}")
    return n
