"""Audio reading (any rate, any channel count) and the DS2 log spectrogram."""
import numpy as np
import pytest
import soundfile as sf
import torch

from ds2cli.audio import audio_info, read_audio
from ds2cli.errors import AudioError
from ds2cli.features import FeatureConfig, compute_stats, log_spectrogram


def test_reads_8k_fsdd_as_16k(fsdd_dir):
    clip = fsdd_dir / "recordings" / "3_george_7.wav"
    native, rate = sf.read(clip)
    assert rate == 8000
    wave = read_audio(clip)
    assert wave.dtype == np.float32 and abs(len(wave) - 2 * len(native)) <= 1
    # resampling keeps the signal: the energy per second is about the same
    assert np.mean(wave ** 2) == pytest.approx(np.mean(native ** 2), rel=0.1)


def test_multichannel_is_averaged_and_offset_duration_select(tmp_path):
    t = np.arange(16000) / 16000
    left, right = np.sin(2 * np.pi * 440 * t), np.zeros_like(t)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], 1), 16000, subtype="FLOAT")
    wave = read_audio(path)
    np.testing.assert_allclose(wave, left / 2, atol=1e-6)
    part = read_audio(path, offset=0.25, duration=0.5)
    np.testing.assert_allclose(part, wave[4000:12000], atol=1e-6)
    assert audio_info(path).duration == pytest.approx(1.0)


def test_bad_audio_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.wav"
    with pytest.raises(AudioError, match="missing.wav: no such file"):
        read_audio(missing)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"RIFF....not audio at all")
    with pytest.raises(AudioError, match="junk.wav: unreadable audio"):
        read_audio(junk)


def test_log_spectrogram_shape_matches_ds2():
    cfg = FeatureConfig()
    assert (cfg.n_fft, cfg.hop_length, cfg.n_bins) == (320, 160, 161)
    feats = log_spectrogram(torch.randn(16000), cfg)
    assert feats.shape == (cfg.num_frames(16000), 161) == (101, 161)
    # a pure tone peaks in its bin: 1 kHz at 50 Hz per bin is bin 20
    tone = torch.sin(2 * torch.pi * 1000 * torch.arange(16000) / 16000)
    assert int(log_spectrogram(tone, cfg)[50].argmax()) == 20


def test_stats_normalise_to_zero_mean_unit_std():
    waves = [np.random.default_rng(i).normal(0, 0.1 * (i + 1), 8000).astype(np.float32) for i in range(4)]
    stats = compute_stats(waves)
    feats = torch.cat([log_spectrogram(torch.from_numpy(w)) for w in waves])
    normed = stats.normalise(feats)
    assert normed.mean(0).abs().max() < 1e-3 and (normed.std(0) - 1).abs().max() < 1e-2
