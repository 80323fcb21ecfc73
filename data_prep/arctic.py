"""CMU ARCTIC-style corpora: <dir>/<prompt>_<take>.flac (or .wav) with a sidecar .txt transcript.
The prompt id is the `arctic_a0001` part of the stem; splits are by prompt, so no prompt is in two
splits: ids from `test_from` on (default arctic_b0400) are test, and every `dev_every`-th remaining
prompt is dev."""
from __future__ import annotations

import re
from pathlib import Path

from ds2cli.data_prep.common import Collected, Item, Skip, read_transcript
from ds2cli.errors import DS2Error

LANGUAGE = "en"
PROMPT = re.compile(r"^(arctic_[ab]\d{4})")
AUDIO_EXTENSIONS = (".flac", ".wav", ".ogg")


def collect(corpus_dir: Path, work_dir: Path, *, jobs: int = 1, seed: int = 0,
            test_from: str = "arctic_b0400", dev_every: int = 20) -> Collected:
    audio = sorted(p for p in corpus_dir.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS)
    if not audio:
        raise DS2Error(f"{corpus_dir}: no audio files (.flac, .wav, .ogg) found")
    prompts = sorted({m.group(1) for p in audio if (m := PROMPT.match(p.stem))})
    train_prompts = [p for p in prompts if p < test_from]
    dev_prompts = set(train_prompts[dev_every - 1::dev_every]) if dev_every else set()
    splits: dict[str, list[Item]] = {"train": [], "dev": [], "test": []}
    skipped: list[Skip] = []
    for path in audio:
        match = PROMPT.match(path.stem)
        if not match:
            skipped.append(Skip("no prompt id", str(path), f"{path}: name has no arctic_[ab]NNNN prompt id"))
            continue
        text, skip = read_transcript(path.with_suffix(".txt"))
        if skip:
            skipped.append(skip)
            continue
        prompt = match.group(1)
        split = "test" if prompt >= test_from else "dev" if prompt in dev_prompts else "train"
        splits[split].append(Item(str(path), text, path.stem, speaker=corpus_dir.name))
    return Collected(splits, skipped, LANGUAGE)
