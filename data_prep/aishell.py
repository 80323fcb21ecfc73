"""AISHELL-1: <root>/wav/{train,dev,test}/<speaker>/<id>.wav and one transcript file,
<root>/transcript/aishell_transcript_v0.8.txt ("<id> 而 对 楼市 ..." per line, words separated by
spaces, which are removed). Audio without a transcript line is skipped and counted (the official
release has some)."""
from __future__ import annotations

import os
from pathlib import Path

from ds2cli.data_prep.common import Collected, Item, Skip, read_id_text_lines
from ds2cli.errors import DS2Error

LANGUAGE = "zh"
TRANSCRIPT = Path("transcript") / "aishell_transcript_v0.8.txt"


def collect(corpus_dir: Path, work_dir: Path, *, jobs: int = 1, seed: int = 0) -> Collected:
    root = next((c for c in (corpus_dir, corpus_dir / "data_aishell") if (c / "wav").is_dir()), None)
    if root is None:
        raise DS2Error(f"{corpus_dir}: no AISHELL-1 wav/ folder found")
    transcript = root / TRANSCRIPT
    if not transcript.is_file():
        raise DS2Error(f"{transcript}: AISHELL-1 transcript file not found")
    skipped: list[Skip] = []
    texts = _read_transcripts(transcript, skipped)
    splits = {}
    for split in ("train", "dev", "test"):
        folder = root / "wav" / split
        items = []
        if folder.is_dir():
            for speaker in sorted(os.scandir(folder), key=lambda e: e.name):
                if not speaker.is_dir():
                    continue
                for entry in sorted(os.scandir(speaker.path), key=lambda e: e.name):
                    if not entry.name.endswith(".wav"):
                        continue
                    utt = entry.name[:-4]
                    if utt in texts:
                        items.append(Item(entry.path, texts[utt], utt, speaker=speaker.name))
                    else:
                        skipped.append(Skip("missing transcript", entry.path,
                                            f"{entry.path}: no line for {utt} in {transcript}"))
        splits[split] = items
    return Collected(splits, skipped, LANGUAGE)


def _read_transcripts(path: Path, skipped: list[Skip]) -> dict[str, str]:
    """id -> text with AISHELL's word-separating spaces removed."""
    return {utt: "".join(text.split()) for utt, text in read_id_text_lines(path, skipped).items()}
