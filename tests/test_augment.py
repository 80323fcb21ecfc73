"""Augmentation library: SNR accuracy on real speech and noise, per-epoch freshness with
determinism (also across processes), cropping/looping/resampling of noise, the SNR schedule,
speed/gain/SpecAugment, the recipe config and overrides, and bad input."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ds2cli.audio import read_audio, resample, write_audio
from ds2cli.augment import AugmentConfig, NoiseBank, build_pipeline, colored_noise, mix_at_snr, snr_db
from ds2cli.errors import AudioError, DS2Error, RecipeError

SR = 16000
NOISE_ALWAYS = [{"type": "noise", "prob": 1.0, "params": {"snr": [0, 30]}}]


@pytest.fixture
def speech(arctic_dir):
    """Ten real utterances (cathy), 16 kHz float32."""
    files = sorted(arctic_dir.glob("*.flac"))[:10]
    return {f.stem: read_audio(f) for f in files}


@pytest.fixture
def noise_pipeline(noise_dir):
    return build_pipeline(AugmentConfig.from_list(NOISE_ALWAYS), SR, noise_dir, total_epochs=3)


def _noise_record(applied):
    return next(a for a in applied if a["type"] == "noise")


# --- SNR -------------------------------------------------------------------------------------

def test_measured_snr_is_within_half_a_db_of_target_on_real_speech_and_noise(speech, noise_pipeline):
    targets, sources = [], set()
    for epoch in range(3):
        for utt, wave in speech.items():
            out, applied = noise_pipeline.apply_waveform(wave, seed=7, epoch=epoch, utt_id=utt)
            record = _noise_record(applied)
            measured = snr_db(wave, out - wave)  # utterance power over the added noise's power
            assert abs(measured - record["snr"]) < 0.5, (utt, epoch, record, measured)
            assert 0.0 <= record["snr"] <= 30.0
            targets.append(record["snr"])
            sources.add(Path(record["noise"]).name)
    assert min(targets) < 8 and max(targets) > 22  # drawn across the whole range
    assert len(sources) >= 4  # the recordings are all in play, not one


@pytest.mark.parametrize("color", ["white", "pink", "brown"])
def test_generated_noise_hits_target_snr(speech, color):
    config = AugmentConfig.from_list([{"type": "noise", "prob": 1, "params": {"snr": [5, 5], "colors": [color]}}])
    pipeline = build_pipeline(config, SR)  # no recordings: generated noise
    wave = next(iter(speech.values()))
    out, applied = pipeline.apply_waveform(wave, seed=0, epoch=0, utt_id="u")
    assert applied[0]["noise"] == f"generated:{color}"
    assert abs(snr_db(wave, out - wave) - 5.0) < 0.5


def test_generated_noise_has_the_colour_it_claims():
    """Log power vs log frequency: slope 0 (white), -1 (pink), -2 (brown)."""
    rng = np.random.default_rng(0)
    for color, slope in [("white", 0.0), ("pink", -1.0), ("brown", -2.0)]:
        x = colored_noise(color, 2 ** 16, rng)
        power = np.abs(np.fft.rfft(x)) ** 2
        freqs = np.arange(len(power))
        bands = np.logspace(np.log10(20), np.log10(len(power) - 1), 12).astype(int)
        means = [power[a:b].mean() for a, b in zip(bands[:-1], bands[1:])]
        centres = [freqs[a:b].mean() for a, b in zip(bands[:-1], bands[1:])]
        fitted = np.polyfit(np.log10(centres), np.log10(means), 1)[0]
        assert abs(fitted - slope) < 0.2, (color, fitted)


def test_mix_at_snr_is_exact_and_leaves_inputs_alone(speech, noise_dir):
    wave = next(iter(speech.values()))
    noise = read_audio(noise_dir / "running_tap.wav")[: len(wave)]
    before = wave.copy()
    for snr in (-5.0, 0.0, 12.5, 30.0):
        out = mix_at_snr(wave, noise, snr)
        assert out.dtype == np.float32
        assert abs(snr_db(wave, out - wave) - snr) < 0.01
    assert np.array_equal(wave, before)


def test_silent_utterance_is_left_alone_and_recorded(noise_pipeline):
    out, applied = noise_pipeline.apply_waveform(np.zeros(SR, np.float32), seed=0, epoch=0, utt_id="s")
    assert not out.any()
    assert "skipped" in applied[0]


# --- freshness and determinism ---------------------------------------------------------------

def test_same_seed_epoch_utterance_repeats_and_new_epochs_are_fresh(speech, noise_pipeline, noise_dir):
    utt, wave = next(iter(speech.items()))
    first = [noise_pipeline.apply_waveform(wave, seed=3, epoch=e, utt_id=utt) for e in range(3)]
    # A new pipeline (as after a resume) gives exactly the same noise for the same triple.
    rebuilt = build_pipeline(AugmentConfig.from_list(NOISE_ALWAYS), SR, noise_dir, total_epochs=3)
    for e, (out, applied) in enumerate(first):
        again, applied_again = rebuilt.apply_waveform(wave, seed=3, epoch=e, utt_id=utt)
        assert np.array_equal(out, again) and applied == applied_again
    # Every epoch draws afresh: SNR and segment differ.
    draws = [(_noise_record(a)["noise"], _noise_record(a)["offset"], _noise_record(a)["snr"]) for _, a in first]
    assert len({d[1:] for d in draws}) == 3 and len({d[2] for d in draws}) == 3
    assert not np.allclose(first[0][0], first[1][0])
    # Other utterances and other seeds differ too.
    other_utt = noise_pipeline.apply_waveform(wave, seed=3, epoch=0, utt_id=utt + "x")[1]
    other_seed = noise_pipeline.apply_waveform(wave, seed=4, epoch=0, utt_id=utt)[1]
    assert other_utt != first[0][1] and other_seed != first[0][1]


def test_draws_do_not_depend_on_the_process(noise_dir):
    """Worker processes have differently salted hash(); the draws must not change."""
    code = (
        "import json, numpy as np, sys\n"
        "from ds2cli.augment import AugmentConfig, build_pipeline\n"
        "p = build_pipeline(AugmentConfig.from_list([{'type': 'noise', 'prob': 0.5}, {'type': 'gain'}]),"
        " 16000, sys.argv[1])\n"
        "w = np.sin(np.arange(8000, dtype=np.float32) / 7)\n"
        "print(json.dumps([p.apply_waveform(w, seed=11, epoch=2, utt_id=f'utt{i}')[1] for i in range(8)]))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run([sys.executable, "-c", code, str(noise_dir)], env=env, capture_output=True,
                            text=True, check=True, timeout=120)
    theirs = json.loads(result.stdout)
    pipeline = build_pipeline(AugmentConfig.from_list([{"type": "noise", "prob": 0.5}, {"type": "gain"}]), SR, noise_dir)
    wave = np.sin(np.arange(8000, dtype=np.float32) / 7)
    ours = [pipeline.apply_waveform(wave, seed=11, epoch=2, utt_id=f"utt{i}")[1] for i in range(8)]
    assert json.loads(json.dumps(ours)) == theirs


def test_prob_sets_the_share_of_noised_utterances(noise_dir):
    pipeline = build_pipeline(AugmentConfig.from_list([{"type": "noise", "prob": 0.4}]), SR, noise_dir)
    wave = np.sin(np.arange(800, dtype=np.float32) / 5)
    noised = sum(bool(pipeline.apply_waveform(wave, seed=0, epoch=0, utt_id=str(i))[1]) for i in range(600))
    assert 0.34 < noised / 600 < 0.46


def test_steps_draw_independently(speech, noise_dir):
    """Adding a gain step does not change the noise an utterance gets."""
    utt, wave = next(iter(speech.items()))
    alone = build_pipeline(AugmentConfig.from_list(NOISE_ALWAYS), SR, noise_dir)
    with_gain = build_pipeline(AugmentConfig.from_list([{"type": "gain"}] + NOISE_ALWAYS), SR, noise_dir)
    a = _noise_record(alone.apply_waveform(wave, seed=1, epoch=0, utt_id=utt)[1])
    b = _noise_record(with_gain.apply_waveform(wave, seed=1, epoch=0, utt_id=utt)[1])
    assert a == b


# --- noise sources: cropping, looping, resampling --------------------------------------------

def test_long_noise_is_cropped_at_a_random_offset(noise_dir):
    bank = NoiseBank.load(noise_dir / "exercise_bike.wav", SR)
    clip = bank.clips[0].samples
    rng = np.random.default_rng(0)
    n = 3 * SR
    starts = []
    for _ in range(5):
        segment, info = bank.draw(n, rng)
        start = int(round(info["offset"] * SR))
        assert "looped" not in info and 0 <= start <= len(clip) - n
        assert np.array_equal(segment, clip[start:start + n])
        starts.append(start)
    assert len(set(starts)) == 5


def test_short_noise_is_looped(noise_dir, tmp_path, speech):
    short = read_audio(noise_dir / "doing_the_dishes.wav", offset=10.0, duration=0.25)  # 4000 samples
    write_audio(tmp_path / "short.wav", short, SR)
    bank = NoiseBank.load(tmp_path / "short.wav", SR)
    clip = bank.clips[0].samples
    segment, info = bank.draw(SR, np.random.default_rng(1))
    start = int(round(info["offset"] * SR))
    assert info["looped"] is True
    assert np.array_equal(segment, clip[(start + np.arange(SR)) % len(clip)])
    # Through the pipeline, the mix still hits its SNR.
    pipeline = build_pipeline(AugmentConfig.from_list(NOISE_ALWAYS), SR, tmp_path / "short.wav")
    wave = next(iter(speech.values()))
    out, applied = pipeline.apply_waveform(wave, seed=0, epoch=0, utt_id="u")
    assert applied[0]["looped"] and abs(snr_db(wave, out - wave) - applied[0]["snr"]) < 0.5


def test_noise_at_a_higher_rate_is_resampled(noise_dir, tmp_path):
    original = read_audio(noise_dir / "running_tap.wav", duration=2.0)
    sf.write(tmp_path / "tap48k.wav", resample(original, SR, 48000), 48000, subtype="FLOAT")
    clip = NoiseBank.load(tmp_path, SR).clips[0].samples
    assert abs(len(clip) - len(original)) <= 1
    n = min(len(clip), len(original))
    assert np.corrcoef(clip[:n], original[:n])[0, 1] > 0.98  # the same noise, back at 16 kHz


def test_noise_manifest_segments(noise_dir, tmp_path):
    rows = [{"audio_filepath": str(noise_dir / "running_tap.wav"), "duration": 2.0, "offset": 5.0},
            {"audio_filepath": str(noise_dir / "white_noise.wav"), "duration": 60.0}]
    (tmp_path / "noise.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    bank = NoiseBank.load(tmp_path / "noise.jsonl", SR)
    assert [len(c.samples) for c in bank.clips] == [2 * SR, 60 * SR]
    assert bank.clips[0].name.endswith("running_tap.wav@5")


# --- SNR schedule ----------------------------------------------------------------------------

def test_snr_range_follows_the_schedule(noise_dir):
    config = AugmentConfig.from_list([{"type": "noise", "prob": 1,
                                       "params": {"snr": [20, 30], "snr_end": [0, 30]}}])
    pipeline = build_pipeline(config, SR, noise_dir, total_epochs=5)
    noise = pipeline.wave_steps[0][1]
    assert noise.snr_range(0) == (20, 30)
    assert noise.snr_range(2) == (10, 30)
    assert noise.snr_range(4) == (0, 30)
    assert noise.snr_range(9) == (0, 30)  # held at the end
    wave = np.sin(np.arange(1600, dtype=np.float32) / 5)
    for epoch, lowest in [(0, 20), (2, 10), (4, 0)]:
        snrs = [pipeline.apply_waveform(wave, seed=0, epoch=epoch, utt_id=str(i))[1][0]["snr"] for i in range(200)]
        assert min(snrs) >= lowest and min(snrs) < lowest + 3 and max(snrs) <= 30


def test_schedule_needs_the_number_of_epochs():
    config = AugmentConfig.from_list([{"type": "noise", "params": {"snr_end": [0, 10]}}])
    with pytest.raises(RecipeError, match="number of epochs"):
        build_pipeline(config, SR)


# --- speed, gain, SpecAugment ----------------------------------------------------------------

def test_speed_and_gain(speech):
    wave = next(iter(speech.values()))
    for factor in (0.9, 1.1):
        config = AugmentConfig.from_list([{"type": "speed", "params": {"factors": [factor]}}])
        out, applied = build_pipeline(config, SR).apply_waveform(wave, seed=0, epoch=0, utt_id="u")
        assert applied == [{"type": "speed", "speed": factor}]
        assert abs(len(out) - len(wave) / factor) <= 1
    config = AugmentConfig.from_list([{"type": "gain", "params": {"db": [-6, -6]}}])
    out, applied = build_pipeline(config, SR).apply_waveform(wave, seed=0, epoch=0, utt_id="u")
    assert np.allclose(out, wave * 10 ** (-6 / 20), atol=1e-7)


def test_specaugment_masks_deterministically(speech):
    from ds2cli.features import log_spectrogram

    feats = log_spectrogram(torch.from_numpy(next(iter(speech.values()))))  # (T, 161)
    config = AugmentConfig.from_list([{"type": "specaugment",
                                       "params": {"freq_masks": 2, "freq_width": 20, "time_masks": 2}}])
    pipeline = build_pipeline(config, SR)
    out, records = pipeline.apply_features_with_record(feats, seed=0, epoch=0, utt_id="u")
    assert out.shape == feats.shape and not torch.equal(out, feats)
    fill = float(feats.mean())
    for mask in records[0]["masks"]:
        region = out[:, mask["start"]:mask["start"] + mask["width"]] if mask["axis"] == "freq" \
            else out[mask["start"]:mask["start"] + mask["width"]]
        assert torch.all(region == fill)
        limit = 20 if mask["axis"] == "freq" else 0.2 * feats.shape[0]
        assert mask["width"] <= limit
    changed = (out != feats).any(dim=1).sum() + (out != feats).any(dim=0).sum()
    assert changed > 0
    assert torch.equal(out, pipeline.apply_features(feats, seed=0, epoch=0, utt_id="u"))
    assert not torch.equal(out, pipeline.apply_features(feats, seed=0, epoch=1, utt_id="u"))
    # Without feature steps: the very same tensor back.
    assert build_pipeline(AugmentConfig.from_list(NOISE_ALWAYS), SR).apply_features(feats, 0, 0, "u") is feats


def test_waveform_input_is_not_modified_and_must_be_1d(noise_pipeline):
    wave = np.sin(np.arange(4000, dtype=np.float32) / 5)
    before = wave.copy()
    noise_pipeline.apply_waveform(wave, seed=0, epoch=0, utt_id="u")
    assert np.array_equal(wave, before)
    with pytest.raises(ValueError, match="1-D"):
        noise_pipeline.apply_waveform(wave.reshape(2, -1), seed=0, epoch=0, utt_id="u")


# --- config and overrides --------------------------------------------------------------------

def test_config_defaults_round_trip_and_overrides():
    config = AugmentConfig.from_list([{"type": "noise"}, {"type": "speed"}])
    assert config.get("noise").prob == 0.4 and config.get("noise").params.snr == (0.0, 30.0)
    assert AugmentConfig.from_list(config.to_list()) == config
    changed = config.with_overrides(["noise.prob=0.25", "noise.snr=[5, 15]", "speed.factors=[0.95,1.05]",
                                     "gain.prob=0.5", "noise.colors=pink"])
    assert changed.get("noise").prob == 0.25 and changed.get("noise").params.snr == (5.0, 15.0)
    assert changed.get("noise").params.colors == ("pink",)
    assert changed.get("speed").params.factors == (0.95, 1.05)
    assert [s.type for s in changed.specs] == ["noise", "speed", "gain"]  # gain appended
    assert config.get("noise").prob == 0.4  # the original is unchanged


@pytest.mark.parametrize("items, message", [
    ([{"type": "reverb"}], "unknown augmentation type 'reverb'"),
    ([{"type": "noise", "params": {"snrr": [0, 3]}}], r"unknown parameter\(s\) snrr \(known: snr, snr_end, colors\)"),
    ([{"type": "noise", "probability": 0.3}], "unknown key"),
    ([{"type": "noise", "params": {"snr": [30, 0]}}], "wrong way round"),
    ([{"type": "noise", "prob": 1.5}], "prob must be between 0 and 1"),
    ([{"type": "noise", "params": {"snr": 10}}], r"must be a range \[low, high\]"),
    ([{"type": "speed", "params": {"factors": [3.0]}}], "must lie in"),
    ([{"type": "gain"}, {"type": "gain"}], "appears twice"),
    ([{"type": "specaugment", "params": {"freq_masks": -1}}], "integer >= 0"),
])
def test_bad_config_is_a_recipe_error(items, message):
    with pytest.raises(RecipeError, match=message):
        AugmentConfig.from_list(items)


@pytest.mark.parametrize("override, message", [
    ("noise.snr=[30,0]", "wrong way round"),
    ("noise.snrr=3", "unknown parameter"),
    ("echo.prob=1", "unknown augmentation type"),
    ("noise=0.4", "expected TYPE.KEY=VALUE"),
    ("noise.prob=[0,", "not a TOML value"),
])
def test_bad_override_is_a_recipe_error(override, message):
    with pytest.raises(RecipeError, match=message):
        AugmentConfig.from_list(NOISE_ALWAYS).with_overrides([override])


def test_config_from_a_recipe_toml(tmp_path):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('[model]\nrnn_layers = 3\n\n[[augment]]\ntype = "speed"\n\n'
                      '[[augment]]\ntype = "noise"\nprob = 0.4\nparams = { snr = [20, 30], snr_end = [0, 30] }\n')
    config = AugmentConfig.from_toml(recipe)
    assert [s.type for s in config.specs] == ["speed", "noise"]
    assert config.get("noise").params.snr_end == (0.0, 30.0)
    (tmp_path / "bad.toml").write_text("[[augment]]\ntype = \n")
    with pytest.raises(RecipeError, match="not valid TOML"):
        AugmentConfig.from_toml(tmp_path / "bad.toml")


# --- bad noise input: errors at build time, before any work ----------------------------------

def _build(noise):
    return build_pipeline(AugmentConfig.from_list(NOISE_ALWAYS), SR, noise)


def test_silent_noise_file_is_an_error(tmp_path):
    sf.write(tmp_path / "silence.wav", np.zeros(SR, np.float32), SR)
    with pytest.raises(AudioError, match="silence.wav: noise recording is silent"):
        _build(tmp_path)


def test_empty_noise_file_is_an_error(tmp_path):
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), SR)
    with pytest.raises(AudioError, match="empty.wav: empty audio"):
        _build(tmp_path)


def test_unreadable_noise_file_is_an_error(tmp_path, noise_dir):
    (tmp_path / "good.wav").symlink_to(noise_dir / "white_noise.wav")
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really a wave file")
    with pytest.raises(AudioError, match="broken.wav: unreadable audio"):
        _build(tmp_path)


def test_noise_folder_without_recordings_is_an_error(tmp_path):
    (tmp_path / "README.txt").write_text("no audio here")
    with pytest.raises(AudioError, match="no noise recordings found"):
        _build(tmp_path)
    with pytest.raises(DS2Error, match="no such noise folder"):
        _build(tmp_path / "missing")


def test_noise_below_the_target_rate_is_an_error(noise_dir, tmp_path):
    sf.write(tmp_path / "tap8k.wav", resample(read_audio(noise_dir / "running_tap.wav", duration=1.0), SR, 8000), 8000)
    with pytest.raises(AudioError, match="tap8k.wav: noise recorded at 8000 Hz cannot cover 16000 Hz"):
        _build(tmp_path)
