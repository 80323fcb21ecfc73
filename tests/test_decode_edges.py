"""Quiet added at the edges of tightly cut audio before decoding (decode.edge_pad_ms), on audio
the tests make, and the decoder's word times with it."""
import numpy as np
import pytest

from ds2cli.decode.config import DecodeConfig
from ds2cli.decode.edges import edge_pad_samples, pad_edges, receptive_field_frames


def test_receptive_field_of_stacked_convolutions():
    assert receptive_field_frames([(11, 3, 5)]) == 11
    assert receptive_field_frames([(11, 2, 5), (11, 1, 5)]) == 1 + 10 + 10 * 2
    assert receptive_field_frames([]) == 1


def test_pad_is_the_option_raised_to_half_the_receptive_field():
    assert edge_pad_samples(150.0, [(11, 3, 5)], 10.0, 16000) == 2400
    assert edge_pad_samples(10.0, [(41, 2, 20)], 10.0, 16000) == (20 + 1) * 160  # 210 ms: the field wins
    assert edge_pad_samples(0.0, [(41, 2, 20)], 10.0, 16000) == 0  # off
    with pytest.raises(ValueError, match="edge_pad_ms"):
        DecodeConfig(edge_pad_ms=-1)


def test_padding_keeps_the_clip_and_adds_quiet_at_its_own_noise_floor():
    rng = np.random.default_rng(0)
    t = np.arange(8000) / 16000
    floor = 0.002
    clip = (0.3 * np.sin(2 * np.pi * 300 * t) * np.hanning(8000) + rng.normal(0, floor, 8000)).astype(np.float32)
    out = pad_edges(clip, 2400)
    assert out.shape == (8000 + 2 * 2400,) and out.dtype == np.float32
    assert np.array_equal(out[2400:-2400], clip)
    lead, tail = out[:2400], out[-2400:]
    assert 0.3 * floor < lead.std() < 1.5 * floor and 0.3 * floor < tail.std() < 1.5 * floor
    assert np.array_equal(pad_edges(clip, 2400), out)  # the same every time
    silent = np.concatenate([np.zeros(800), clip, np.zeros(800)]).astype(np.float32)
    assert not pad_edges(silent, 1600)[:1600].any()  # digital silence where the clip has it
    assert pad_edges(clip, 0) is clip


def test_decoder_pads_and_reports_times_of_the_unpadded_audio(tmp_path):
    """A random model: what matters is the arithmetic of durations and word times."""
    import soundfile as sf
    import torch

    from ds2cli.decode.decoder import Decoder
    from ds2cli.features import FeatureConfig, FeatureStats
    from ds2cli.inference import Recognizer
    from ds2cli.model import ConvLayer, DeepSpeech2, ModelConfig
    from ds2cli.text import CharTokenizer

    torch.manual_seed(0)
    tok = CharTokenizer.english()
    model = DeepSpeech2(ModelConfig(conv_type="1d", conv=[ConvLayer(16, (1, 11), (1, 2))], rnn_layers=1,
                                    rnn_hidden=16), len(tok))
    with torch.no_grad():  # a model that always says "a": every frame, so words span the whole output
        model.output.bias[:] = -20
        model.output.bias[tok.vocab.index("a")] = 20
    rec = Recognizer(model, tok, FeatureConfig(), FeatureStats([0.0] * 161, [1.0] * 161))
    path = tmp_path / "clip.wav"
    sf.write(path, np.random.default_rng(1).normal(0, 0.1, 8000).astype(np.float32), 16000)
    plain = Decoder(rec, DecodeConfig(method="greedy"))
    padded = Decoder(rec, DecodeConfig(method="greedy", edge_pad_ms=150))
    assert plain.pad == 0 and padded.pad == 2400
    (a,), _ = plain.decode_files([path])
    (b,), _ = padded.decode_files([path])
    assert a.duration == b.duration == pytest.approx(0.5)
    for word in b.timing:
        assert 0.0 <= word["start"] <= word["end"] <= 0.5
    assert b.timing[0]["start"] == 0.0 and b.timing[-1]["end"] == pytest.approx(0.5, abs=0.03)
