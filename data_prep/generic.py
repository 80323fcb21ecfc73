"""Any corpus as a folder of audio files with sidecar .txt transcripts (searched recursively), or
a TSV file of `path<TAB>text` lines (paths relative to the TSV's folder). If the folder has
train/, dev/ and test/ subfolders they are the splits; otherwise utterances are split at random
(seeded) by `dev_fraction` and `test_fraction`."""
from __future__ import annotations

import random
from pathlib import Path

from ds2cli.data_prep.common import Collected, Item, Skip, read_transcript
from ds2cli.errors import DS2Error

LANGUAGE = "en"
AUDIO_EXTENSIONS = {".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif"}


def collect(corpus_dir: Path, work_dir: Path, *, jobs: int = 1, seed: int = 0, tsv: str | None = None,
            language: str = "en", dev_fraction: float = 0.05, test_fraction: float = 0.05) -> Collected:
    skipped: list[Skip] = []
    named = [s for s in ("train", "dev", "test") if (corpus_dir / s).is_dir()]
    if tsv:
        items = _tsv_items(Path(tsv) if Path(tsv).is_absolute() else corpus_dir / tsv, skipped)
    elif named:
        splits = {s: _folder_items(corpus_dir / s, corpus_dir, skipped) for s in named}
        return Collected(splits, skipped, language)
    else:
        items = _folder_items(corpus_dir, corpus_dir, skipped)
    if not items and not skipped:
        raise DS2Error(f"{corpus_dir}: no audio files with transcripts found")
    rng = random.Random(seed)
    order = list(range(len(items)))
    rng.shuffle(order)
    n_test, n_dev = round(len(items) * test_fraction), round(len(items) * dev_fraction)
    split_of = {i: "test" if k < n_test else "dev" if k < n_test + n_dev else "train" for k, i in enumerate(order)}
    splits: dict[str, list[Item]] = {"train": [], "dev": [], "test": []}
    for i, item in enumerate(items):
        splits[split_of[i]].append(item)
    return Collected(splits, skipped, language)


def _item_id(path: Path, root: Path) -> str:
    return str(path.relative_to(root).with_suffix("")).replace("/", "_")


def _folder_items(folder: Path, root: Path, skipped: list[Skip]) -> list[Item]:
    items = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS):
        text, skip = read_transcript(path.with_suffix(".txt"))
        if skip:
            skipped.append(skip)
        else:
            items.append(Item(str(path), text, _item_id(path, root), speaker=path.parent.name))
    return items


def _tsv_items(tsv: Path, skipped: list[Skip]) -> list[Item]:
    if not tsv.is_file():
        raise DS2Error(f"{tsv}: no such TSV file")
    items = []
    for n, raw in enumerate(tsv.read_bytes().splitlines(), 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            skipped.append(Skip("transcript not UTF-8", str(tsv), f"{tsv}:{n}: line is not UTF-8 text"))
            continue
        if not line.strip():
            continue
        path, sep, text = line.partition("\t")
        if not sep:
            skipped.append(Skip("bad TSV line", str(tsv), f"{tsv}:{n}: expected path<TAB>text"))
            continue
        audio = Path(path) if Path(path).is_absolute() else tsv.parent / path
        items.append(Item(str(audio), text, _item_id(audio, tsv.parent) if audio.is_relative_to(tsv.parent)
                          else audio.stem, speaker=None))
    return items
