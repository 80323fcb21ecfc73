"""LibriSpeech in its official layout: <root>/<subset>/<speaker>/<chapter>/<id>.flac with the
chapter's transcripts in <speaker>-<chapter>.trans.txt ("<id> TEXT IN CAPITALS" per line).

Splits: "train" joins the train-* subsets present (or those named in `train_subsets`); "dev" and
"test" are dev-clean and test-clean; dev-other and test-other, when present, become splits of their
own names."""
from __future__ import annotations

import os
from pathlib import Path

from ds2cli.data_prep.common import Collected, Item, Skip, read_id_text_lines

LANGUAGE = "en"
TRAIN_SUBSETS = ("train-clean-100", "train-clean-360", "train-other-500")
EVAL_SPLITS = {"dev": "dev-clean", "test": "test-clean", "dev-other": "dev-other", "test-other": "test-other"}


def collect(corpus_dir: Path, work_dir: Path, *, jobs: int = 1, seed: int = 0,
            train_subsets: list[str] | None = None, dev_subset: str = "dev-clean",
            test_subset: str = "test-clean") -> Collected:
    root = _find_root(corpus_dir)
    present = {p.name for p in root.iterdir() if p.is_dir()}
    wanted = {"train": [s for s in (train_subsets or TRAIN_SUBSETS) if s in present]}
    if train_subsets:
        missing = sorted(set(train_subsets) - present)
        if missing:
            from ds2cli.errors import DS2Error

            raise DS2Error(f"{root}: subset(s) not found: {', '.join(missing)}")
    eval_splits = dict(EVAL_SPLITS, dev=dev_subset, test=test_subset)
    for split, subset in eval_splits.items():
        if subset in present:
            wanted[split] = [subset]
    splits, skipped = {}, []
    for split, subsets in wanted.items():
        items = []
        for subset in subsets:
            items += _subset_items(root / subset, skipped)
        splits[split] = items
    return Collected(splits, skipped, LANGUAGE)


def _find_root(corpus_dir: Path) -> Path:
    """Accept the folder holding the subsets, or a LibriSpeech/ folder inside it, or one subset."""
    for candidate in (corpus_dir, corpus_dir / "LibriSpeech"):
        if candidate.is_dir() and any((candidate / s).is_dir() for s in (*TRAIN_SUBSETS, *EVAL_SPLITS.values())):
            return candidate
    if corpus_dir.name in (*TRAIN_SUBSETS, *EVAL_SPLITS.values()):
        return corpus_dir.parent
    from ds2cli.errors import DS2Error

    raise DS2Error(f"{corpus_dir}: no LibriSpeech subsets (train-clean-100, dev-clean, ...) found")


def _subset_items(subset_dir: Path, skipped: list[Skip]) -> list[Item]:
    items = []
    for speaker in sorted(os.scandir(subset_dir), key=lambda e: e.name):
        if not speaker.is_dir():
            continue
        for chapter in sorted(os.scandir(speaker.path), key=lambda e: e.name):
            if chapter.is_dir():
                items += _chapter_items(Path(chapter.path), speaker.name, chapter.name, skipped)
    return items


def _chapter_items(folder: Path, speaker: str, chapter: str, skipped: list[Skip]) -> list[Item]:
    trans = folder / f"{speaker}-{chapter}.trans.txt"
    texts = read_id_text_lines(trans, skipped) if trans.is_file() else {}
    audio = {Path(e.name).stem: e.path for e in os.scandir(folder) if e.name.endswith(".flac")}
    items = []
    for utt in sorted(audio):
        if utt not in texts:
            skipped.append(Skip("missing transcript", audio[utt], f"{audio[utt]}: no line for {utt} in {trans}"))
            continue
        items.append(Item(audio[utt], texts[utt], utt, speaker=speaker))
    for utt in sorted(set(texts) - set(audio)):
        path = str(folder / f"{utt}.flac")
        skipped.append(Skip("missing audio", path, f"{path}: listed in {trans.name} but not found"))
    return items
