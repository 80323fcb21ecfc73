"""Kaldi data directories, the layout Kaldi, ESPnet and many corpora ship: a folder per split with
`wav.scp` (`<recording> <audio path>`), `text` (`<utterance> <transcript>`), `utt2spk`
(`<utterance> <speaker>`), optional `segments` (`<utterance> <recording> <start> <end>`, seconds;
end -1: to the end of the recording) and optional `spk2gender` (`<speaker> m|f`).

`DIR` is either one data directory (it holds `wav.scp`) or a folder whose subfolders `train/`,
`dev/` and `test/` are data directories (`dev/` and `test/` optional; other names are ignored).
Relative audio paths resolve against `DIR` first, then against the data directory itself.

`dev_speakers` (and, for a single data directory, `test_speakers`) hold out that many speakers of
the training data, chosen at random (seeded), so that no speaker is in two splits.

A `wav.scp` entry that is a shell command (`sox ... |`) or an archive offset (`foo.ark:12`) is
refused: nothing is ever executed. Such entries, malformed lines and utterances without audio or
transcript are skipped, counted and reported; validation (`data_prep.common`) then skips missing
and unreadable audio the same way.

Options: dev_speakers (0), test_speakers (0)."""
from __future__ import annotations

import random
import re
from pathlib import Path

from ds2cli.data_prep.common import Collected, Item, Skip
from ds2cli.errors import DS2Error

LANGUAGE = "en"
SPLITS = ("train", "dev", "test")
_ARCHIVE = re.compile(r"\.ark:\d+$")


def collect(corpus_dir: Path, work_dir: Path, *, jobs: int = 1, seed: int = 0, dev_speakers: int = 0,
            test_speakers: int = 0) -> Collected:
    skipped: list[Skip] = []
    if (corpus_dir / "wav.scp").is_file():
        splits = {"train": read_data_dir(corpus_dir, corpus_dir, skipped)}
        held = {"test": test_speakers, "dev": dev_speakers}
    else:
        named = [s for s in SPLITS if (corpus_dir / s / "wav.scp").is_file()]
        if "train" not in named:
            raise DS2Error(f"{corpus_dir}: not a Kaldi data directory (no wav.scp, nor train/wav.scp)")
        splits = {s: read_data_dir(corpus_dir / s, corpus_dir, skipped) for s in named}
        if test_speakers and "test" in named:
            raise DS2Error(f"{corpus_dir}: test_speakers holds out training speakers as test, "
                           "but the corpus has a test/ data directory")
        held = {"test": test_speakers, "dev": 0 if "dev" in named else dev_speakers}
    rng = random.Random(seed)
    for name, count in held.items():
        if count:
            splits["train"], splits[name] = hold_out_speakers(splits["train"], count, rng,
                                                              f"{corpus_dir}: {name}_speakers")
    return Collected(splits, skipped, LANGUAGE)


def hold_out_speakers(items: list[Item], count: int, rng: random.Random, what: str) -> tuple[list[Item], list[Item]]:
    """Move every utterance of `count` speakers (drawn with `rng`) out of `items`: (kept, held)."""
    speakers = sorted({it.speaker for it in items})
    if count >= len(speakers):
        raise DS2Error(f"{what} = {count}, but the training data has only {len(speakers)} speaker(s)")
    chosen = set(rng.sample(speakers, count))
    return [it for it in items if it.speaker not in chosen], [it for it in items if it.speaker in chosen]


def read_table(path: Path, skipped: list[Skip], fields: int, what: str) -> dict[str, list[str]]:
    """`<key> <value...>` lines -> {key: [value fields]}. With `fields` = 1 the rest of the line is
    one value (a transcript, a path); otherwise exactly `fields` values are required. Blank lines
    are ignored; a malformed, non-UTF-8 or repeated line is a Skip (the first of a key is kept)."""
    table: dict[str, list[str]] = {}
    for n, raw in enumerate(path.read_bytes().splitlines(), 1):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            skipped.append(Skip(f"bad {what} line", str(path), f"{path}:{n}: line is not UTF-8 text"))
            continue
        if not line:
            continue
        parts = line.split(maxsplit=1 if fields == 1 else -1)
        key, values = parts[0], parts[1:]
        if fields == 1 and what != "text" and not values or fields > 1 and len(values) != fields:
            skipped.append(Skip(f"bad {what} line", str(path),
                                f"{path}:{n}: expected '<id> " + " ".join(["<field>"] * fields) + f"', got {line[:80]!r}"))
            continue
        if key in table:
            skipped.append(Skip(f"bad {what} line", str(path), f"{path}:{n}: repeated id {key!r} (first kept)"))
            continue
        table[key] = values or [""]
    return table


def _optional(folder: Path, name: str, skipped, fields: int) -> dict[str, list[str]]:
    path = folder / name
    return read_table(path, skipped, fields, name) if path.is_file() else {}


def read_data_dir(folder: Path, root: Path, skipped: list[Skip]) -> list[Item]:
    """The utterances of one Kaldi data directory, in `text` order."""
    for required in ("wav.scp", "text"):
        if not (folder / required).is_file():
            raise DS2Error(f"{folder}: not a Kaldi data directory (no {required})")
    wav_scp = folder / "wav.scp"
    audio = {}
    for rec, (entry,) in read_table(wav_scp, skipped, 1, "wav.scp").items():
        path = _audio_path(entry, rec, wav_scp, folder, root, skipped)
        if path is not None:
            audio[rec] = path
    refused = {s.path for s in skipped if s.reason.startswith("wav.scp entry")}
    texts = read_table(folder / "text", skipped, 1, "text")
    speakers = _optional(folder, "utt2spk", skipped, 1)
    genders = _optional(folder, "spk2gender", skipped, 1)
    segments = _optional(folder, "segments", skipped, 3)
    items = []
    for utt, (text,) in texts.items():
        rec, offset, duration = utt, None, None
        if segments:
            if utt not in segments:
                skipped.append(Skip("no segment", str(folder / "segments"), f"{folder / 'segments'}: no line for {utt!r}"))
                continue
            rec, start, end = segments[utt]
            try:
                offset, end_s = float(start), float(end)
            except ValueError:
                skipped.append(Skip("bad segments line", str(folder / "segments"),
                                    f"{folder / 'segments'}: {utt}: start/end {start!r} {end!r} are not numbers"))
                continue
            if offset < 0 or (end_s >= 0 and end_s <= offset):
                skipped.append(Skip("bad segments line", str(folder / "segments"),
                                    f"{folder / 'segments'}: {utt}: segment {start}-{end} is empty or negative"))
                continue
            duration = end_s - offset if end_s >= 0 else -1.0
        if rec not in audio:
            if f"{wav_scp}#{rec}" not in refused:
                skipped.append(Skip("missing audio", str(wav_scp), f"{wav_scp}: no entry for recording {rec!r} (utterance {utt})"))
            continue
        speaker = speakers.get(utt, [utt])[0].split()[0]
        gender = genders.get(speaker, [None])[0]
        items.append(Item(audio[rec], text, utt, speaker=speaker, offset=offset, duration=duration,
                          gender=gender.split()[0].lower() if gender else None))
    return items


def _audio_path(entry: str, rec: str, wav_scp: Path, folder: Path, root: Path, skipped: list[Skip]) -> str | None:
    """The file a wav.scp entry names, or None (and a Skip) for a command or an archive entry."""
    where = f"{wav_scp}#{rec}"
    if entry.endswith("|") or entry.startswith("|"):
        skipped.append(Skip("wav.scp entry is a shell command", where,
                            f"{wav_scp}: {rec}: entry {entry[:60]!r} is a shell command; ds2cli never runs "
                            "commands: convert the audio to files (sox, ffmpeg) and list their paths"))
        return None
    if _ARCHIVE.search(entry):
        skipped.append(Skip("wav.scp entry is an archive offset", where,
                            f"{wav_scp}: {rec}: entry {entry[:60]!r} points into a Kaldi archive; "
                            "list audio files instead (copy-feats/wav-copy can write them)"))
        return None
    path = Path(entry)
    if not path.is_absolute():
        path = root / entry if (root / entry).exists() or not (folder / entry).exists() else folder / entry
    return str(path)
