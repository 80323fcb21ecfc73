"""The Kaldi data-directory preparer on layouts the tests build (segments, missing files, bad lines,
shell-command entries) and on the speechocean762 copy in ../shared/data."""
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from ds2cli.data_prep.common import prepare
from ds2cli.cli import main
from ds2cli.errors import DS2Error
from ds2cli.manifest import read_manifest

SR = 16000


def _tone(path: Path, seconds: float, freq: float = 220.0):
    t = np.arange(int(seconds * SR)) / SR
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.2 * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR)


def _write(folder: Path, name: str, lines: list[str]):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _data_dir(root: Path, split: str, speakers: dict[str, list[str]]):
    """One file per utterance: audio under root/audio/, paths in wav.scp relative to root."""
    folder = root / split
    wav, text, u2s = [], [], []
    for spk, utts in speakers.items():
        for k, utt in enumerate(utts):
            _tone(root / "audio" / f"{utt}.wav", 0.5 + 0.1 * k)
            wav.append(f"{utt} audio/{utt}.wav")
            text.append(f"{utt} HELLO WORLD {spk.upper()}")
            u2s.append(f"{utt} {spk}")
    _write(folder, "wav.scp", wav)
    _write(folder, "text", text)
    _write(folder, "utt2spk", u2s)
    _write(folder, "spk2gender", [f"{s} {'f' if i % 2 else 'm'}" for i, s in enumerate(speakers)])
    return folder


def _speakers(prefix: str, n: int, per: int = 3) -> dict[str, list[str]]:
    names = [prefix + "abcdefghij"[s] for s in range(n)]  # letters: the name is in the transcript
    return {name: [f"{name}_{u}" for u in range(per)] for name in names}


def test_splits_speakers_genders_and_held_out_dev(tmp_path):
    root = tmp_path / "corpus"
    _data_dir(root, "train", _speakers("tr", 6))
    _data_dir(root, "test", _speakers("te", 2))
    report = prepare("kaldi", root, tmp_path / "exp", dev_speakers=2, seed=3)
    assert report.skipped == {}
    rows = {s: read_manifest(tmp_path / f"exp/manifests/{s}.jsonl") for s in ("train", "dev", "test")}
    assert [len(r) for r in rows.values()] == [12, 6, 6]
    spk = {s: {r["speaker"] for r in rs} for s, rs in rows.items()}
    assert not spk["train"] & spk["dev"] and len(spk["dev"]) == 2 and spk["test"] == {"tea", "teb"}
    row = rows["test"][1]
    assert row["text"] == "hello world tea" and row["gender"] == "m" and row["id"] == "tea_1"
    assert row["duration"] == pytest.approx(0.6, abs=1e-3) and "offset" not in row
    assert Path(row["audio_filepath"]) == (root / "audio/tea_1.wav").resolve()
    lm = (tmp_path / "exp/lm_text.txt").read_text().splitlines()
    assert sorted(lm) == sorted(r["text"] for r in rows["train"])  # the LM sees training text only
    again = prepare("kaldi", root, tmp_path / "exp2", dev_speakers=2, seed=3)
    assert again.splits["dev"] == {**report.splits["dev"], "manifest": again.splits["dev"]["manifest"]}


def test_segments_give_offsets_and_bad_segments_are_skipped(tmp_path):
    root = tmp_path / "seg"
    _tone(root / "long.wav", 4.0)
    _write(root, "wav.scp", ["rec1 long.wav"])  # a single data directory, paths relative to it
    _write(root, "segments", ["u1 rec1 0.00 1.25", "u2 rec1 1.50 3.00", "u3 rec1 3.2 -1",
                              "u4 rec1 3.5 5.0", "u5 rec1 2.0 1.0", "u6 rec1 zero 1", "u7 rec9 0 1"])
    _write(root, "text", [f"u{k} word number {'abcdefg'[k - 1]}" for k in range(1, 8)] + ["u8 no segment line"])
    _write(root, "utt2spk", [f"u{k} spk{k % 2}" for k in range(1, 9)])
    report = prepare("kaldi", root, tmp_path / "exp")
    assert report.skipped == {"segment beyond end of audio": 1, "bad segments line": 2, "missing audio": 1,
                              "no segment": 1}
    rows = read_manifest(tmp_path / "exp/manifests/train.jsonl")
    got = [(r["id"], r["offset"], r["duration"]) for r in rows]
    assert got == [("u1", 0.0, 1.25), ("u2", 1.5, 1.5), ("u3", 3.2, pytest.approx(0.8, abs=1e-3))]
    from ds2cli.manifest import read_row_audio

    assert len(read_row_audio(rows[1], SR)) == pytest.approx(1.5 * SR, abs=2)


def test_commands_missing_files_and_bad_lines_are_refused_counted_and_reported(tmp_path):
    root = tmp_path / "bad"
    _data_dir(root, "train", _speakers("s", 2))
    marker = tmp_path / "executed"
    wav = (root / "train/wav.scp").read_text().splitlines()
    wav += [f"cmd1 sox audio/sa_0.wav -t wav - > {marker} |", f"cmd2 touch {marker} |",
            "ark1 data/raw.ark:1234", "gone audio/nowhere.wav", "lonely", "sa_0 audio/sa_1.wav"]
    (root / "train/wav.scp").write_bytes(("\n".join(wav) + "\n").encode() + b"bin \xff\xfe\n")
    text = (root / "train/text").read_text()
    text += "cmd1 a command\ncmd2 another\nark1 in an archive\ngone missing file\nnoaudio never listed\nempty\n"
    (root / "train/text").write_text(text)
    report = prepare("kaldi", root, tmp_path / "exp")
    assert not marker.exists()  # nothing was run
    assert report.skipped == {"wav.scp entry is a shell command": 2, "bad wav.scp line": 3, "missing audio": 2,
                              "wav.scp entry is an archive offset": 1, "no such file": 1}
    messages = [s["message"] for s in report.skipped_items]
    assert any("cmd1" in m and "shell command" in m and "never runs" in m for m in messages)
    assert report.splits["train"]["utterances"] == 6  # every good utterance kept
    saved = json.loads((tmp_path / "exp/prepare_report.json").read_text())
    assert saved["skipped"] == report.skipped

    result = CliRunner().invoke(main, ["prepare", "kaldi", str(root), "--exp-dir", str(tmp_path / "cli")])
    assert result.exit_code == 0, result.output
    assert "shell command" in result.output and "train: 6 utts" in result.output


def test_not_a_data_directory_and_too_many_held_out_speakers(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DS2Error, match="empty: not a Kaldi data directory"):
        prepare("kaldi", tmp_path / "empty", tmp_path / "exp")
    _data_dir(tmp_path / "c", "train", _speakers("s", 2))
    with pytest.raises(DS2Error, match="dev_speakers = 2, but the training data has only 2 speaker"):
        prepare("kaldi", tmp_path / "c", tmp_path / "exp", dev_speakers=2)
    result = CliRunner().invoke(main, ["prepare", "kaldi", str(tmp_path / "empty"), "--exp-dir", str(tmp_path / "e")])
    assert result.exit_code == 1 and "not a Kaldi data directory" in result.output
    assert "Traceback" not in result.output


def test_speechocean762(speechocean_dir, tmp_path):
    report = prepare("kaldi", speechocean_dir, tmp_path / "exp", jobs=2, dev_speakers=10, stats_utterances=50)
    assert report.skipped == {}
    counts = {s: v["utterances"] for s, v in report.splits.items()}
    assert counts["test"] == 2500 and counts["train"] + counts["dev"] == 2500 and counts["dev"] > 100
    rows = {s: read_manifest(tmp_path / f"exp/manifests/{s}.jsonl") for s in counts}
    spk = {s: {r["speaker"] for r in rs} for s, rs in rows.items()}
    assert len(spk["dev"]) == 10 and len(spk["train"]) == 115 and len(spk["test"]) == 125
    assert not (spk["train"] & spk["test"]) and not (spk["train"] & spk["dev"])
    assert {r["gender"] for r in rows["test"]} == {"m", "f"}
    hours = sum(v["hours"] for v in report.splits.values())
    assert 5.0 < hours < 6.0  # the README: 5.57 h
    assert rows["train"][0]["text"] == rows["train"][0]["text"].lower()


def _small_speechocean(src: Path, dst: Path, speakers: dict[str, int]):
    """A Kaldi copy of a few speakers of speechocean762 (`split` -> how many speakers), pointing
    at the original audio (nothing copied)."""
    for split, n in speakers.items():
        u2s = [line.split() for line in (src / split / "utt2spk").read_text().splitlines()]
        keep = sorted({s for _, s in u2s})[:n]
        utts = {u for u, s in u2s if s in keep}
        for name in ("wav.scp", "text", "utt2spk", "spk2gender"):
            lines = (src / split / name).read_text().splitlines()
            col = {"spk2gender": keep}.get(name, utts)
            lines = [line for line in lines if line.split()[0] in col]
            if name == "wav.scp":
                lines = [f"{k} {src / p}" for k, p in (line.split(maxsplit=1) for line in lines)]
            _write(dst / split, name, lines)


def test_speechocean_recipe_trains_and_decodes_end_to_end(speechocean_dir, noise_dir, tmp_path):
    """The shipped recipe through the CLI on 4 + 1 training and 1 test speaker, its model made
    small and trained 3 steps: prepare, train, LM build and beam decoding of the test split."""
    _small_speechocean(speechocean_dir, tmp_path / "so", {"train": 5, "test": 1})
    exp = tmp_path / "exp"
    sets = ["model.rnn_hidden=32", "model.conv=[{channels = 16, kernel = [1, 5], stride = [1, 3]}]",
            "train.max_steps=3", "train.num_workers=0", "train.threads=1", f"train.noise_dir={json.dumps(str(noise_dir))}",
            "data.options.dev_speakers=1", "data.stats_utterances=20"]
    result = CliRunner().invoke(main, ["train", "--recipe", "speechocean", "--data-dir", str(tmp_path / "so"),
                                       "--exp-dir", str(exp), "--json", "--quiet"]
                                + [a for s in sets for a in ("--set", s)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["steps"] == 3
    report = json.loads((exp / "prepare_report.json").read_text())
    assert report["splits"]["dev"]["utterances"] == 20 and report["splits"]["train"]["utterances"] == 80
    result = CliRunner().invoke(main, ["decode", "--checkpoint", str(exp / "checkpoints/last.pt"), "--manifest",
                                       str(exp / "manifests/test.jsonl"), "--out", str(tmp_path / "hyp.jsonl"),
                                       "--beam-size", "4"])
    assert result.exit_code == 0, result.output
    assert "decoded 20 of 20 utterances" in result.output and "WER" in result.output
    assert (exp / "lm" / "lm.bin").is_file()  # built from the training text
    assert len((tmp_path / "hyp.jsonl").read_text().splitlines()) == 20
