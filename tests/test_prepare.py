"""Every preparer on real audio in small trees the tests build (from ../shared/data recordings),
with the bad-input cases counted by reason."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from ds2cli.data_prep.common import prepare
from ds2cli.cli import main
from ds2cli.errors import DS2Error
from ds2cli.manifest import read_manifest


def _arctic_clips(arctic_dir, n):
    clips = sorted(arctic_dir.glob("*.flac"))[:n]
    return [(c, c.with_suffix(".txt").read_text().strip()) for c in clips]


def _bad_audio_files(folder: Path) -> dict[str, Path]:
    """A corrupt, a truncated and an empty file, named by what is wrong with them."""
    folder.mkdir(parents=True, exist_ok=True)
    corrupt = folder / "corrupt.flac"
    corrupt.write_bytes(b"fLaC" + bytes(range(256)) * 4)
    empty = folder / "empty.flac"  # a valid header with no samples (libsndfile finds it by content)
    sf.write(empty, np.zeros(0, dtype=np.float32), 16000, format="WAV")
    truncated = folder / "truncated.wav"
    sf.write(truncated, np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32), 16000, subtype="PCM_16")
    truncated.write_bytes(truncated.read_bytes()[:4000])
    return {"corrupt": corrupt, "empty": empty, "truncated": truncated}


@pytest.fixture
def librispeech_tree(tmp_path, arctic_dir):
    root = tmp_path / "LibriSpeech"
    clips = _arctic_clips(arctic_dir, 9)
    layout = {"train-clean-100": clips[:5], "dev-clean": clips[5:7], "test-clean": clips[7:9]}
    for (subset, items), speaker in zip(layout.items(), ["19", "84", "121"]):
        chapter = root / subset / speaker / "198"
        chapter.mkdir(parents=True)
        lines = []
        for k, (clip, text) in enumerate(items):
            utt = f"{speaker}-198-{k:04d}"
            shutil.copy(clip, chapter / f"{utt}.flac")
            lines.append(f"{utt} {text.upper()}")
        (chapter / f"{speaker}-198.trans.txt").write_text("\n".join(lines) + "\n")
    return root


def test_librispeech_layout(librispeech_tree, tmp_path):
    report = prepare("librispeech", librispeech_tree, tmp_path / "exp", jobs=1)
    assert {s: v["utterances"] for s, v in report.splits.items()} == {"train": 5, "dev": 2, "test": 2}
    rows = read_manifest(tmp_path / "exp/manifests/train.jsonl")
    for row in rows:
        info = sf.info(row["audio_filepath"])
        assert row["duration"] == pytest.approx(info.frames / info.samplerate, abs=1e-3)
        assert row["text"] == row["text"].lower() and "," not in row["text"] and row["speaker"] == "19"
        assert set(row["text"]) <= set(" 'abcdefghijklmnopqrstuvwxyz")
    vocab = json.loads((tmp_path / "exp/tokenizer.json").read_text())["vocab"]
    assert len(vocab) == 28  # a-z, space, apostrophe (+ blank in the model)
    stats = json.loads((tmp_path / "exp/feature_stats.json").read_text())
    assert len(stats["mean"]) == 161 and all(s > 0 for s in stats["std"])
    lm_lines = (tmp_path / "exp/lm_text.txt").read_text().splitlines()
    assert lm_lines == [r["text"] for r in rows]  # LM text is training text only


def test_librispeech_bad_items_are_skipped_and_counted(librispeech_tree, tmp_path):
    chapter = librispeech_tree / "train-clean-100" / "19" / "198"
    bad = _bad_audio_files(tmp_path / "bad")
    lines = (chapter / "19-198.trans.txt").read_text()
    for k, name in enumerate(["corrupt", "empty"], start=50):
        shutil.copy(bad[name], chapter / f"19-198-{k:04d}.flac")
        lines += f"19-198-{k:04d} SOME TEXT\n"
    shutil.copy(next(chapter.glob("*.flac")), chapter / "19-198-0060.flac")  # no transcript line
    lines += "19-198-0070 AUDIO IS MISSING\n"
    lines += "19-198-0001 DUPLICATE OF A LINE\n"
    shutil.copy(next(chapter.glob("*.flac")), chapter / "19-198-0080.flac")
    lines += "19-198-0080 COSTS 5 DOLLARS\n"  # a digit is outside the alphabet
    (chapter / "19-198.trans.txt").write_bytes(lines.encode() + b"19-198-0090 caf\xe9\n")
    shutil.copy(next(chapter.glob("*.flac")), chapter / "19-198-0090.flac")
    report = prepare("librispeech", librispeech_tree, tmp_path / "exp", jobs=1)
    assert report.skipped == {"unreadable audio": 1, "empty audio": 1, "missing transcript": 2,
                              "missing audio": 1, "transcript not UTF-8": 1, "duplicate id": 1,
                              "characters outside the alphabet": 1}
    assert report.splits["train"]["utterances"] == 5  # nothing else lost
    saved = json.loads((tmp_path / "exp/prepare_report.json").read_text())
    assert saved["skipped"] == report.skipped
    assert all(item["path"] in item["message"] or item["path"].split("/")[-1] in item["message"]
               for item in saved["skipped_items"])


def test_truncated_audio_is_detected(tmp_path):
    from ds2cli.audio import audio_info
    from ds2cli.errors import AudioError

    bad = _bad_audio_files(tmp_path)
    for name, path in bad.items():
        with pytest.raises(AudioError, match=str(path.name)):
            audio_info(path)


def test_aishell_layout(tmp_path, arctic_dir):
    root = tmp_path / "data_aishell"
    texts = {"BAC009S0002W0122": "而 对 楼市 成交 抑制 作用 最 大 的 限 购", "BAC009S0002W0123": "也 成为 地方 政府 的 眼中 钉",
             "BAC009S0724W0121": "楼市 成交 的 作用", "BAC009S0764W0121": "一二线 城市 虽然 也 处于 调整 中"}
    places = {"BAC009S0002W0122": "train/S0002", "BAC009S0002W0123": "train/S0002",
              "BAC009S0724W0121": "dev/S0724", "BAC009S0764W0121": "test/S0764", "BAC009S0002W0999": "train/S0002"}
    clips = _arctic_clips(arctic_dir, len(places))
    for (utt, place), (clip, _) in zip(places.items(), clips):
        (root / "wav" / place).mkdir(parents=True, exist_ok=True)
        wave, sr = sf.read(clip)
        sf.write(root / "wav" / place / f"{utt}.wav", wave, sr)
    (root / "transcript").mkdir()
    (root / "transcript/aishell_transcript_v0.8.txt").write_text(
        "".join(f"{u} {t}\n" for u, t in texts.items()), encoding="utf-8")
    report = prepare("aishell", tmp_path, tmp_path / "exp", jobs=1)
    # W0999 has no transcript line; the test sentence's characters never occur in training
    assert report.skipped == {"missing transcript": 1, "characters outside the alphabet": 1}
    train = read_manifest(tmp_path / "exp/manifests/train.jsonl")
    assert [r["text"] for r in train] == ["而对楼市成交抑制作用最大的限购", "也成为地方政府的眼中钉"]
    assert report.splits["dev"]["utterances"] == 1
    vocab = json.loads((tmp_path / "exp/tokenizer.json").read_text())
    assert vocab["language"] == "zh" and "楼" in vocab["vocab"] and " " not in vocab["vocab"]


def test_arctic_splits_by_prompt(arctic_dir, tmp_path):
    report = prepare("arctic", arctic_dir, tmp_path / "exp", jobs=2, stats_utterances=50)
    assert report.skipped == {}
    prompts = {}
    for split in ("train", "dev", "test"):
        for row in read_manifest(tmp_path / f"exp/manifests/{split}.jsonl"):
            prompts.setdefault(row["id"][:12], set()).add(split)
    assert all(len(s) == 1 for s in prompts.values())  # no prompt in two splits
    assert all(p >= "arctic_b0400" for p, s in prompts.items() if s == {"test"})
    assert sum(v["utterances"] for v in report.splits.values()) == 1620


def test_generic_folder_and_tsv(tmp_path, arctic_dir):
    folder = tmp_path / "corpus"
    folder.mkdir()
    for k, (clip, text) in enumerate(_arctic_clips(arctic_dir, 20)):
        shutil.copy(clip, folder / f"utt{k}.flac")
        (folder / f"utt{k}.txt").write_text(text)
    (folder / "utt0.txt").unlink()  # missing transcript
    (folder / "utt1.txt").write_bytes(b"\xff\xfe bad bytes")  # not UTF-8
    report = prepare("generic", folder, tmp_path / "exp", jobs=1, dev_fraction=0.1, test_fraction=0.1)
    assert report.skipped == {"missing transcript": 1, "transcript not UTF-8": 1}
    assert sum(v["utterances"] for v in report.splits.values()) == 18
    assert report.splits["test"]["utterances"] == 2

    tsv = tmp_path / "list.tsv"
    tsv.write_text("".join(f"corpus/utt{k}.flac\thello number {'one two three four five six seven eight nine ten'.split()[k - 2]}\n"
                           for k in range(2, 12)) + "no tab here\n")
    report = prepare("generic", tmp_path, tmp_path / "exp2", jobs=1, tsv="list.tsv", dev_fraction=0, test_fraction=0.2)
    assert report.skipped == {"bad TSV line": 1}
    assert report.splits["train"]["utterances"] == 8

    tsv.write_text("corpus/utt3.flac\tcosts 5 dollars\n")
    with pytest.raises(DS2Error, match="no usable training utterances.*characters outside the alphabet"):
        prepare("generic", tmp_path, tmp_path / "exp3", jobs=1, tsv="list.tsv", dev_fraction=0, test_fraction=0)


def test_prepare_is_a_noop_when_done(arctic_dir, tmp_path):
    prepare("arctic", arctic_dir, tmp_path / "exp", jobs=1, stats_utterances=20)
    manifest = tmp_path / "exp/manifests/train.jsonl"
    mtime = manifest.stat().st_mtime_ns
    prepare("arctic", arctic_dir, tmp_path / "exp", jobs=1, stats_utterances=20)
    assert manifest.stat().st_mtime_ns == mtime
    prepare("arctic", arctic_dir, tmp_path / "exp", jobs=1, stats_utterances=20, force=True)
    assert manifest.stat().st_mtime_ns != mtime


def test_bpe_units(arctic_dir, tmp_path):
    from ds2cli.text import load_tokenizer

    prepare("arctic", arctic_dir, tmp_path / "exp", jobs=1, units="bpe", vocab_size=100, stats_utterances=20)
    tok = load_tokenizer(tmp_path / "exp/tokenizer.json")
    assert tok.kind == "bpe" and len(tok) == 101
    text = "the danger trail"
    assert tok.decode(tok.encode(text)) == text and 0 not in tok.encode(text)


def test_missing_corpus_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DS2Error, match="nowhere: corpus folder not found"):
        prepare("arctic", tmp_path / "nowhere", tmp_path / "exp")
    result = CliRunner().invoke(main, ["prepare", "librispeech", str(tmp_path / "nowhere"), "--exp-dir", str(tmp_path / "e")])
    assert result.exit_code == 1 and "corpus folder not found" in result.output


def test_prepare_cli_prints_summary(arctic_dir, tmp_path):
    result = CliRunner().invoke(main, ["prepare", "arctic", str(arctic_dir), "--exp-dir", str(tmp_path / "exp"),
                                       "-o", "dev_every=10", "--stats-utterances", "20", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["splits"]["dev"]["utterances"] > 100  # every 10th prompt instead of every 20th
