"""`ds2cli augment` end to end on real speech and real noise: files and manifest written, what was
applied recorded, SNR kept through the 16-bit files, the same result as on-the-fly augmentation,
bad rows skipped and counted, bad input refused before any work, re-runs a no-op."""
import json

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from ds2cli.audio import audio_info, read_audio
from ds2cli.augment import AugmentConfig, build_pipeline, snr_db
from ds2cli.cli import main
from ds2cli.manifest import read_manifest


@pytest.fixture
def manifest(arctic_dir, tmp_path):
    """Three real utterances, a missing file and a corrupt file."""
    rows = []
    for flac in sorted(arctic_dir.glob("*.flac"))[:3]:
        rows.append({"audio_filepath": str(flac), "duration": audio_info(flac).duration,
                     "text": flac.with_suffix(".txt").read_text().strip(), "speaker": "cathy"})
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage")
    rows.append({"audio_filepath": str(tmp_path / "missing.wav"), "duration": 1.0, "text": "gone"})
    rows.append({"audio_filepath": "corrupt.wav", "duration": 1.0, "text": "broken"})
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _run(*args):
    return CliRunner().invoke(main, ["augment", *map(str, args)], catch_exceptions=False)


def test_offline_augment_end_to_end(manifest, noise_dir, tmp_path):
    out = tmp_path / "out"
    result = _run(manifest, "--out-dir", out, "--copies", 2, "--seed", 5, "--noise-dir", noise_dir,
                  "--augment", "noise.snr=[5,25]", "--augment", "gain.prob=1", "--json", "--quiet")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["written"] == 6 and report["skipped"] == 2 and report["rows"] == 5
    assert {e["id"] for e in report["skipped_examples"]} == {"missing", "corrupt"}
    assert report["applied"] == {"noise": 6, "gain": 6}

    rows = read_manifest(out / "manifest.jsonl")  # a valid manifest, paths relative to it
    assert len(rows) == 6 and len(list((out / "audio").glob("*.wav"))) == 6
    sources = {r["id"]: r for r in read_manifest(manifest, require_text=False)}
    config = AugmentConfig.from_list([{"type": "noise", "prob": 1.0, "params": {"snr": [5, 25]}},
                                      {"type": "gain", "prob": 1.0}])
    pipeline = build_pipeline(config, 16000, noise_dir, total_epochs=2)
    for row in rows:
        source = sources[row["source"]["id"]]
        assert row["text"] == source["text"] and row["speaker"] == "cathy"
        noise = next(a for a in row["augment"] if a["type"] == "noise")
        assert set(noise) >= {"noise", "offset", "snr"} and 5 <= noise["snr"] <= 25
        written = read_audio(row["audio_filepath"])
        assert abs(len(written) / 16000 - row["duration"]) < 1e-3
        # The SNR survives scaling and 16-bit quantisation: recover the speech part via the gain.
        clean = read_audio(source["audio_filepath"])
        headroom = next((a["scale"] for a in row["augment"] if a["type"] == "headroom"), 1.0)
        scale = headroom * 10 ** (next(a for a in row["augment"] if a["type"] == "gain")["gain_db"] / 20)
        assert abs(snr_db(clean * scale, written - clean * scale) - noise["snr"]) < 0.5
        # Offline copy k is exactly the on-the-fly result at epoch k (up to 16-bit rounding).
        online, applied = pipeline.apply_waveform(clean, seed=5, epoch=row["copy"], utt_id=source["id"])
        assert applied == [a for a in row["augment"] if a["type"] != "headroom"]
        assert np.max(np.abs(written - online * headroom)) < 2e-4
    # The two copies of an utterance got different noise.
    by_source = {}
    for row in rows:
        by_source.setdefault(row["source"]["id"], []).append(json.dumps(row["augment"][0]))
    assert all(len(set(v)) == 2 for v in by_source.values())


def test_rerun_is_a_no_op_and_changed_settings_need_force(manifest, noise_dir, tmp_path):
    out = tmp_path / "out"
    args = [manifest, "--out-dir", out, "--noise-dir", noise_dir, "--quiet"]
    assert _run(*args).exit_code == 0
    mtime = (out / "manifest.jsonl").stat().st_mtime_ns
    again = _run(*args)
    assert again.exit_code == 0 and "already done" in again.output
    assert (out / "manifest.jsonl").stat().st_mtime_ns == mtime
    changed = _run(*args, "--seed", 1)
    assert changed.exit_code == 1 and "different augmentation; pass --force" in changed.output
    forced = _run(*args, "--seed", 1, "--force", "--augment", "speed.factors=[1.1]", "--augment", "speed.prob=1")
    assert forced.exit_code == 0, forced.output
    rows = read_manifest(out / "manifest.jsonl")
    assert len(list((out / "audio").glob("*.wav"))) == 3
    for row in rows:
        assert {"type": "speed", "speed": 1.1} in row["augment"]
        source_duration = audio_info(row["source"]["audio_filepath"]).duration
        assert abs(row["duration"] - source_duration / 1.1) < 1e-3


def test_nothing_readable_exits_non_zero(tmp_path):
    (tmp_path / "bad.jsonl").write_text(json.dumps({"audio_filepath": "nope.wav", "duration": 1, "text": "x"}) + "\n")
    result = _run(tmp_path / "bad.jsonl", "--out-dir", tmp_path / "out", "--quiet")
    assert result.exit_code == 1
    assert "nothing written (1 of 1 rows unreadable)" in result.output
    assert not (tmp_path / "out" / "manifest.jsonl").exists()


@pytest.mark.parametrize("extra, message", [
    (["--augment", "noise.snr=[30,0]"], "wrong way round"),
    (["--augment", "noise.level=3"], "unknown parameter"),
    (["--noise-dir", "SILENT"], "noise recording is silent"),
])
def test_bad_input_fails_before_any_work(manifest, tmp_path, extra, message):
    silent = tmp_path / "silent"
    silent.mkdir()
    sf.write(silent / "quiet.wav", np.zeros(16000, np.float32), 16000)
    extra = [str(silent) if e == "SILENT" else e for e in extra]
    result = _run(manifest, "--out-dir", tmp_path / "out", "--quiet", *extra)
    assert result.exit_code == 1 and message in result.output
    assert result.output.startswith("Error:") and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_config_file_and_help(manifest, tmp_path):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('[[augment]]\ntype = "gain"\nparams = { db = [-3, -3] }\n\n'
                      '[[augment]]\ntype = "specaugment"\n')
    result = _run(manifest, "--out-dir", tmp_path / "out", "--config", recipe, "--quiet")
    assert result.exit_code == 0, result.output
    assert "applied: gain 3" in result.output and "skipped 2 unreadable" in result.output
    row = read_manifest(tmp_path / "out" / "manifest.jsonl")[0]
    assert row["augment"] == [{"type": "gain", "gain_db": -3.0}]
    assert "--noise-dir" in _run("--help").output
