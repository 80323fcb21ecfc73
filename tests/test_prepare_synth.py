"""The embedded synthetic corpus (espeak-ng): small sizes so the tests stay fast."""
import importlib.util
import random
import sys
from pathlib import Path

import numpy as np
import pytest

from ds2cli.data_prep import synth
from ds2cli.data_prep.common import prepare
from ds2cli.data_prep.synth_sentences import generator, number_words
from ds2cli.audio import audio_info, read_audio
from ds2cli.errors import DS2Error
from ds2cli.manifest import read_manifest
from ds2cli.text import ENGLISH_CHARS, normalize

HAVE_ESPEAK = importlib.util.find_spec("espeakng_loader") is not None
needs_espeak = pytest.mark.skipif(not HAVE_ESPEAK, reason="espeakng-loader not installed (pip install 'ds2cli[synth]')")
SIZES = {"train": 40, "dev": 10, "test": 10}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    if not HAVE_ESPEAK:
        pytest.skip("espeakng-loader not installed (pip install 'ds2cli[synth]')")
    out = tmp_path_factory.mktemp("synth")
    report = prepare("synth", None, out, jobs=2, seed=0, num_train=SIZES["train"],
                     num_dev=SIZES["dev"], num_test=SIZES["test"])
    rows = {s: read_manifest(out / "manifests" / f"{s}.jsonl") for s in SIZES}
    return out, report, rows


def _variant(speaker: str) -> str:
    return speaker.split("+", 1)[1]


def test_manifests_and_audio(prepared):
    out, report, rows = prepared
    assert report.skipped == {}
    assert {s: len(r) for s, r in rows.items()} == SIZES
    for row in (r for split in rows.values() for r in split):
        info = audio_info(row["audio_filepath"])
        assert info.sample_rate == 16000 and info.channels == 1
        assert abs(row["duration"] - info.duration) < 1e-3
        assert 0.5 < row["duration"] < 8
        assert row["audio_filepath"].startswith(str(out / "audio"))
    wave = read_audio(rows["train"][0]["audio_filepath"])
    assert 0.2 < np.abs(wave).max() < 0.95  # peak-normalised, not clipped
    assert np.abs(wave[:800]).max() < 0.02  # starts with (near) silence


def test_texts_are_normalised_english(prepared):
    _, _, rows = prepared
    for row in (r for split in rows.values() for r in split):
        assert row["text"] == normalize(row["text"], "en")
        assert set(row["text"]) <= set(ENGLISH_CHARS)
        assert not any(c.isdigit() for c in row["text"])


def test_test_and_dev_are_held_out(prepared):
    _, _, rows = prepared
    texts = {s: {r["text"] for r in r_} for s, r_ in rows.items()}
    variants = {s: {_variant(r["speaker"]) for r in r_} for s, r_ in rows.items()}
    assert len(texts["train"]) == SIZES["train"]  # sentences are unique
    for held in ("dev", "test"):
        assert not texts[held] & texts["train"]
        assert not variants[held] & variants["train"]
    assert not texts["dev"] & texts["test"] and not variants["dev"] & variants["test"]
    assert variants["test"] <= set(synth.TEST_VARIANTS) and variants["dev"] <= set(synth.DEV_VARIANTS)
    assert len({r["speaker"] for r in rows["train"]}) > 20  # many voices


@needs_espeak
def test_rerun_reuses_audio_and_remakes_missing_files_identically(prepared):
    out, _, rows = prepared
    files = sorted((out / "audio").rglob("*.wav"))
    assert len(files) == sum(SIZES.values())
    victim = Path(rows["test"][3]["audio_filepath"])
    original = victim.read_bytes()
    victim.unlink()
    mtimes = {f: f.stat().st_mtime_ns for f in files if f != victim}
    again = synth.collect(None, out, jobs=1, seed=0, num_train=SIZES["train"],
                          num_dev=SIZES["dev"], num_test=SIZES["test"])
    assert {f: f.stat().st_mtime_ns for f in files if f != victim} == mtimes
    assert victim.read_bytes() == original  # the same seed makes the same audio
    assert [i.text for i in again.splits["train"]] == [r["text"] for r in rows["train"]]


def test_plan_is_deterministic_and_seed_dependent():
    variants = [f"v{i}" for i in range(30)] + list(synth.TEST_VARIANTS) + list(synth.DEV_VARIANTS)
    a = synth.plan_corpus(SIZES, "en", 0, variants)
    assert a == synth.plan_corpus(SIZES, "en", 0, variants)
    assert a["train"] != synth.plan_corpus(SIZES, "en", 1, variants)["train"]
    # held-out test sentences stay disjoint from train at the default size
    big = synth.plan_corpus({"train": 2000, "dev": 200, "test": 200}, "en", 0, variants)
    train = {u.text for u in big["train"]}
    assert not train & {u.text for u in big["test"]}
    assert len({w for t in train for w in t.split()}) > 300  # a vocabulary for a word LM
    # the held-out splits do not depend on the size of the training split
    small = synth.plan_corpus({"train": 500, "dev": 200, "test": 200}, "en", 0, variants)
    assert small["test"] == big["test"] and small["dev"] == big["dev"]


def test_sentence_generator():
    assert number_words(23) == "twenty three" and number_words(105) == "one hundred and five"
    rng = random.Random(0)
    make = generator("en")
    sentences = [make(rng) for _ in range(500)]
    assert len(set(sentences)) > 400
    assert all(normalize(s, "en") == s and set(s) <= set(ENGLISH_CHARS) for s in sentences)


@needs_espeak
def test_mandarin(tmp_path):
    collected = synth.collect(None, tmp_path, jobs=1, seed=0, num_train=40, num_dev=3, num_test=3, lang="zh")
    assert collected.language == "zh" and not collected.skipped
    train_chars = {c for item in collected.splits["train"] for c in item.text}
    for split, items in collected.splits.items():
        assert len(items) == {"train": 40, "dev": 3, "test": 3}[split]
        for item in items:
            assert item.text == normalize(item.text, "zh") and " " not in item.text
            assert item.speaker.startswith("cmn+")
            assert audio_info(item.audio_filepath).duration > 0.5
            if split != "train":
                assert set(item.text) <= train_chars  # the alphabet comes from train


@needs_espeak
def test_an_espeak_crash_skips_one_utterance_only(tmp_path):
    """espeak-ng 1.52 segfaults on this one; the run must go on (and not hang)."""
    crash = synth.Utterance("周平晚上要去超市做饭", "cmn+Demonic", 136, 36, 80, 0.1, 0.1, 0.5, 1e-4, 1)
    fine = synth.Utterance("我想喝水", "cmn+f2", 150, 50, 50, 0.1, 0.1, 0.5, 1e-4, 2)
    todo = [(str(tmp_path / "a.wav"), crash), (str(tmp_path / "b.wav"), fine), (str(tmp_path / "c.wav"), fine)]
    skipped = synth._synthesise(todo, jobs=1, lang="zh")
    assert (tmp_path / "b.wav").is_file() and (tmp_path / "c.wav").is_file()
    assert len(skipped) <= 1 and all(s.reason == "synthesis crashed" and s.path.endswith("a.wav") for s in skipped)


def test_bad_options(tmp_path, monkeypatch):
    with pytest.raises(DS2Error, match="unknown option"):
        synth.collect(None, tmp_path, jobs=1, seed=0, uses_per_clip=3)
    with pytest.raises(DS2Error, match="num_train must be a whole number"):
        synth.collect(None, tmp_path, jobs=1, seed=0, num_train="many")
    with pytest.raises(DS2Error, match="unknown lang"):
        synth.collect(None, tmp_path, jobs=1, seed=0, lang="fr")
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)  # as if the extra were not installed
    with pytest.raises(DS2Error, match=r"pip install 'ds2cli\[synth\]'"):
        synth.collect(None, tmp_path, jobs=1, seed=0)
