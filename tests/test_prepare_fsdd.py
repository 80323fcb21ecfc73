"""FSDD connected-digit preparation, on a handful of real FSDD clips copied under tmp_path
(never into the repo), plus one corrupt clip and one misnamed file."""
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from ds2cli.data_prep import fsdd
from ds2cli.data_prep.common import prepare
from ds2cli.audio import audio_info, read_audio
from ds2cli.errors import DS2Error
from ds2cli.manifest import read_manifest
from ds2cli.text import ENGLISH_CHARS, normalize

SPEAKERS = ("jackson", "theo")
DIGITS = range(5)
INDICES = (0, 1, 5, 6, 10, 11, 12)  # test, dev, train
CORRUPT = "3_theo_11.wav"


def _split(index: int) -> str:
    return "test" if index < 5 else "dev" if index < 10 else "train"


@pytest.fixture(scope="module")
def small_fsdd(tmp_path_factory) -> Path:
    src = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fsdd" / "recordings"
    if not src.is_dir():
        pytest.skip(f"real recordings not found at {src} (../shared/data is absent)")
    root = tmp_path_factory.mktemp("fsdd")
    rec = root / "recordings"
    rec.mkdir()
    for speaker in SPEAKERS:
        for digit in DIGITS:
            for index in INDICES:
                name = f"{digit}_{speaker}_{index}.wav"
                shutil.copyfile(src / name, rec / name)
    # a clip cut short inside its header, and a file that is not an FSDD clip
    (rec / CORRUPT).write_bytes((rec / CORRUPT).read_bytes()[:30])
    shutil.copyfile(src / "1_theo_20.wav", rec / "notes.wav")
    return root


@pytest.fixture(scope="module")
def prepared(small_fsdd, tmp_path_factory):
    out = tmp_path_factory.mktemp("fsdd_out")
    report = prepare("fsdd", small_fsdd, out, jobs=1, seed=0, uses_per_clip=2)
    times = [json.loads(line) for line in (out / fsdd.WORD_TIMES).read_text().splitlines()]
    return out, report, {t["id"]: t["words"] for t in times}


def _rows(out: Path) -> dict[str, list[dict]]:
    return {s: read_manifest(out / "manifests" / f"{s}.jsonl") for s in ("train", "dev", "test")}


def test_bad_clips_are_skipped_and_counted(prepared):
    out, report, times = prepared
    assert report.skipped == {"unreadable audio": 1, "unrecognised file name": 1}
    assert {Path(s["path"]).name for s in report.skipped_items} == {CORRUPT, "notes.wav"}
    used = {w["clip"] for words in times.values() for w in words}
    assert CORRUPT[:-4] not in used
    # every other clip is used exactly uses_per_clip (2) times
    expected = {f"{d}_{s}_{i}" for s in SPEAKERS for d in DIGITS for i in INDICES} - {CORRUPT[:-4]}
    counts = {}
    for words in times.values():
        for w in words:
            counts[w["clip"]] = counts.get(w["clip"], 0) + 1
    assert set(counts) == expected and set(counts.values()) == {2}


def test_splits_follow_the_official_split_and_one_speaker_each(prepared):
    out, _, times = prepared
    rows = _rows(out)
    assert all(rows.values())
    for split, split_rows in rows.items():
        for row in split_rows:
            clips = [w["clip"].split("_") for w in times[row["id"]]]
            assert {_split(int(index)) for _, _, index in clips} == {split}, row["id"]
            assert {speaker for _, speaker, _ in clips} == {row["speaker"]}
            assert 1 <= len(clips) <= 7


def test_transcripts_and_word_times_match_the_audio(prepared, small_fsdd):
    out, _, times = prepared
    rows = [r for split in _rows(out).values() for r in split]
    for row in rows:
        words = times[row["id"]]
        assert row["text"] == " ".join(w["word"] for w in words)
        assert row["text"] == normalize(row["text"], "en") and set(row["text"]) <= set(ENGLISH_CHARS)
        assert [fsdd.DIGITS[int(w["clip"][0])] for w in words] == row["text"].split()
        info = audio_info(row["audio_filepath"])
        assert info.sample_rate == 16000 and abs(row["duration"] - info.duration) < 1e-3
        starts, ends = np.array([w["start"] for w in words]), np.array([w["end"] for w in words])
        assert starts[0] >= 0.049 and ends[-1] <= row["duration"] - 0.049
        assert (ends > starts).all() and (starts[1:] - ends[:-1] >= 0.049).all()
        assert (starts[1:] - ends[:-1] <= 0.301).all()
    # the audio between start and end is the source clip, resampled to 16 kHz
    for row in rows[:5]:
        wave = read_audio(row["audio_filepath"])
        for w in times[row["id"]]:
            clip = read_audio(small_fsdd / "recordings" / f"{w['clip']}.wav")
            start = int(round(w["start"] * 16000))
            got = wave[start:start + clip.size]
            assert np.abs(got - clip).max() < 2e-4  # 16-bit rounding only


def test_rerun_reuses_audio_and_a_seed_is_deterministic(prepared, small_fsdd, tmp_path):
    out, _, _ = prepared
    files = sorted((out / "audio").rglob("*.wav"))
    mtimes = [f.stat().st_mtime_ns for f in files]
    again = fsdd.collect(small_fsdd, out, jobs=1, seed=0, uses_per_clip=2)
    assert [f.stat().st_mtime_ns for f in files] == mtimes
    assert sorted(Path(i.audio_filepath) for items in again.splits.values() for i in items) == files

    other = fsdd.collect(small_fsdd, tmp_path, jobs=1, seed=0, uses_per_clip=2)
    assert [i.text for i in other.splits["train"]] == [i.text for i in again.splits["train"]]
    for a, b in zip(other.splits["test"], again.splits["test"]):
        assert Path(a.audio_filepath).read_bytes() == Path(b.audio_filepath).read_bytes()
    assert (tmp_path / fsdd.WORD_TIMES).read_text() == (out / fsdd.WORD_TIMES).read_text()


def test_another_seed_makes_other_strings():
    clips = [fsdd.Clip(f"/x/{d}_a_{i}.wav", d, "a", i, 8000) for d in range(10) for i in range(10, 20)]

    def plan(seed):
        return [u.text for u in fsdd.plan_group(clips, random.Random(seed), 2, 2, 7)]

    assert plan(0) == plan(0) and plan(0) != plan(1)
    texts = plan(0)
    assert sum(len(t.split()) for t in texts) == 2 * len(clips)
    assert all(2 <= len(t.split()) <= 7 for t in texts[:-1])


def test_errors(tmp_path):
    with pytest.raises(DS2Error, match="give the FSDD folder"):
        fsdd.collect(None, tmp_path, jobs=1, seed=0)
    with pytest.raises(DS2Error, match="no usable FSDD clips"):
        fsdd.collect(tmp_path, tmp_path / "out", jobs=1, seed=0)
    with pytest.raises(DS2Error, match="unknown option"):
        fsdd.collect(tmp_path, tmp_path / "out", jobs=1, seed=0, num_train=3)
    with pytest.raises(DS2Error, match="max_digits"):
        fsdd.collect(tmp_path, tmp_path / "out", jobs=1, seed=0, min_digits=5, max_digits=3)


def test_real_corpus_clips_and_split_sizes(fsdd_dir):
    clips, skipped = fsdd.find_clips(fsdd_dir / "recordings")
    assert not skipped and len(clips) == 3000
    sizes = {s: sum(c.split == s for c in clips) for s in ("train", "dev", "test")}
    assert sizes == {"train": 2400, "dev": 300, "test": 300}
    assert {c.speaker for c in clips} == {"george", "jackson", "lucas", "nicolas", "theo", "yweweler"}
