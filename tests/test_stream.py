"""Streaming recognition: the streamed emissions equal the offline ones for any chunking and any
batch of streams, the final transcripts equal `ds2cli decode`'s, endpointing closes segments.

Small random forward-only models (1D and 2D front ends, GRU/LSTM/RNN, lookahead 0 and > 0) are
enough for exactness; their batch-norm statistics and output layer are scaled so that the
emissions vary from frame to frame (many different argmax tokens)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ds2cli.decode.decoder import Decoder
from ds2cli.decode.config import DecodeConfig, LMConfig
from ds2cli.errors import DS2Error
from ds2cli.features import FeatureConfig, FeatureStats
from ds2cli.inference import Recognizer
from ds2cli.model import ConvLayer, DeepSpeech2, ModelConfig
from ds2cli.stream import EndpointConfig, SearchConfig, StreamingModel, StreamRecognizer
from ds2cli.text import CharTokenizer

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TOK = CharTokenizer.english()
RATE = 16000
ATOL, RTOL = 1e-5, 1e-6  # float32: a few ulps at the log-probabilities of unlikely tokens


def random_model(conv_type="1d", rnn_type="gru", lookahead=3, bidirectional=False, seed=0,
                 output_scale=10.0) -> Recognizer:
    torch.manual_seed(seed)
    conv = ([ConvLayer(16, (1, 5), (1, 2)), ConvLayer(16, (1, 3), (1, 2))] if conv_type == "1d"
            else [ConvLayer(4, (11, 5), (2, 2)), ConvLayer(4, (5, 3), (2, 1))])
    cfg = ModelConfig(conv_type=conv_type, conv=conv, rnn_type=rnn_type, rnn_layers=2, rnn_hidden=24,
                      bidirectional=bidirectional, lookahead=lookahead, fc_hidden=[20])
    model = DeepSpeech2(cfg, len(TOK))
    with torch.no_grad():  # contracting recurrences, as trained ones are (a ReLU RNN may explode)
        for rnn in model.rnns:
            rnn.rnn.weight_hh_l0.mul_(0.5)
    rec = Recognizer(model, TOK, FeatureConfig(), FeatureStats([-5.0] * 161, [5.0] * 161))
    # batch-norm statistics of real activations (one training pass with momentum 1), so every
    # layer's output varies with the input; a sharper output layer gives confident frames
    for module in model.modules():
        if hasattr(module, "running_mean"):
            module.momentum = 1.0
    feats = rec.features(make_audio(2.0, seed=99))[None]
    with torch.no_grad():
        model.train()
        model(feats, torch.tensor([feats.shape[1]]))
        model.output.weight.mul_(output_scale)
    rec.model = model.eval()
    return rec


def make_audio(seconds: float, seed: int = 0) -> np.ndarray:
    """Chirps and noise bursts between silences: frames that differ a lot from each other."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    wave = 0.3 * np.sin(2 * np.pi * (200 + 900 * t) * t) * (np.sin(2 * np.pi * 1.7 * t) > -0.3)
    wave += 0.05 * rng.standard_normal(n) * (np.sin(2 * np.pi * 0.9 * t) > 0.5)
    return wave.astype(np.float32)


def offline(rec: Recognizer, wave: np.ndarray) -> np.ndarray:
    return rec.emissions([wave])[0].numpy()


def streamed(model: StreamingModel, wave: np.ndarray, sizes) -> np.ndarray:
    """Feed `wave` in chunks of the given sizes (cycled), then flush."""
    state, outs, pos, i = model.new_state(), [], 0, 0
    while pos < len(wave):
        n = sizes[i % len(sizes)]
        outs.append(model.step([state], [wave[pos:pos + n]])[0])
        pos, i = pos + n, i + 1
    outs.append(model.step([state], [np.zeros(0, np.float32)], [True])[0])
    return np.concatenate(outs)


@pytest.mark.parametrize("conv_type,rnn_type,lookahead", [
    ("1d", "gru", 3), ("1d", "lstm", 0), ("1d", "rnn", 2), ("2d", "gru", 0), ("2d", "lstm", 4), ("2d", "rnn", 1)])
def test_any_chunking_gives_the_offline_emissions(conv_type, rnn_type, lookahead):
    rec = random_model(conv_type, rnn_type, lookahead)
    model = StreamingModel(rec)
    wave = make_audio(1.3)
    want = offline(rec, wave)
    assert want.shape[0] == rec.model.output_lengths(torch.tensor([131]))[0] and len(set(want.argmax(1))) >= 3
    rng = np.random.default_rng(1)
    for sizes in ([160], [2560], list(rng.integers(0, 3000, 40)), [1, 7, 0, 300, 5000]):
        got = streamed(model, wave, sizes)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL)


def test_one_sample_at_a_time():
    rec = random_model("2d", "gru", 3)
    wave = make_audio(0.25, seed=3)
    got = streamed(StreamingModel(rec), wave, [1])
    np.testing.assert_allclose(got, offline(rec, wave), atol=ATOL, rtol=RTOL)


def test_stream_lengths_around_the_window_edges():
    """Streams of a few hundred samples: the reflect padding at both ends and the conv padding
    overlap; every length gives the offline frames (none below n_fft // 2 + 1 samples)."""
    rec = random_model("1d", "gru", 2)
    model = StreamingModel(rec)
    for n in (161, 200, 320, 321, 479, 480, 481, 800):
        wave = np.resize(make_audio(0.1, seed=n), n)
        np.testing.assert_allclose(streamed(model, wave, [97]), offline(rec, wave), atol=ATOL, rtol=RTOL)
    assert streamed(model, np.zeros(100, np.float32), [30]).shape == (0, len(TOK))


def test_batched_step_gives_each_stream_what_it_gets_alone():
    rec = random_model("1d", "lstm", 3)
    model = StreamingModel(rec)
    waves = [make_audio(s, seed=i) for i, s in enumerate((1.1, 0.4, 0.8, 1.5))]
    sizes = [160, 1600, 333, 2560]
    joins = [0, 3, 1, 6]  # the step at which each stream starts: different phases
    alone = [streamed(model, w, [n]) for w, n in zip(waves, sizes)]
    states = [model.new_state() for _ in waves]
    pos, outs, done = [0] * 4, [[] for _ in waves], [False] * 4
    step = 0
    while not all(done):
        active = [i for i in range(4) if not done[i] and step >= joins[i]]
        chunks, finals = [], []
        for i in active:
            chunks.append(waves[i][pos[i]:pos[i] + sizes[i]])
            pos[i] += sizes[i]
            finals.append(pos[i] >= len(waves[i]))
        for i, out, fin in zip(active, model.step([states[i] for i in active], chunks, finals), finals):
            outs[i].append(out)
            done[i] = fin
        step += 1
    for i in range(4):
        got = np.concatenate(outs[i])
        assert got.shape == alone[i].shape
        np.testing.assert_allclose(got, alone[i], atol=ATOL, rtol=RTOL)
        np.testing.assert_allclose(got, offline(rec, waves[i]), atol=ATOL, rtol=RTOL)


def test_bidirectional_models_are_refused_with_the_reason():
    with pytest.raises(DS2Error, match="bidirectional"):
        StreamingModel(random_model(bidirectional=True, lookahead=0))


def test_a_finished_stream_accepts_nothing_more():
    model = StreamingModel(random_model())
    state = model.new_state()
    model.step([state], [make_audio(0.2)], [True])
    with pytest.raises(ValueError, match="finished"):
        model.step([state], [make_audio(0.1)])


def test_latency_counts_conv_context_lookahead_and_half_window():
    model = StreamingModel(random_model("1d", "gru", 3))
    # conv right context 2 + 1*2 = 4 feature frames, lookahead 3 output frames of 4 feature frames
    assert model.latency_ms == pytest.approx((4 + 3 * 4) * 10 + 10)
    assert model.frame_seconds == pytest.approx(0.04) and model.sample_rate == RATE


def test_bf16_streaming_stays_close_to_fp32():
    rec = random_model("1d", "gru", 3)
    wave = make_audio(1.0)
    fp32 = streamed(StreamingModel(rec), wave, [1600])
    rec16 = Recognizer(rec.model, TOK, rec.feature_config, rec.feature_stats, precision="bf16")
    bf16 = streamed(StreamingModel(rec16), wave, [1600])
    assert bf16.shape == fp32.shape
    assert np.mean(np.abs(np.exp(bf16) - np.exp(fp32))) < 0.02


# -- search and endpointing ------------------------------------------------------------------
def events_of(rec: StreamRecognizer, wave: np.ndarray, chunk: int) -> list[dict]:
    events = []
    for i in range(0, len(wave), chunk):
        events += rec.accept(wave[i:i + chunk])
    return events + rec.finish()


@pytest.fixture(scope="module")
def words_lm(tmp_path_factory):
    from ds2cli.decode.lm import load_lm
    from ds2cli.decode.lm_build import build_lm

    d = tmp_path_factory.mktemp("lm")
    corpus = ["the cat sat on the mat", "a dog ran in the park", "set a timer for ten", "to be or not"] * 3
    (d / "corpus.txt").write_text("\n".join(corpus) + "\n")
    return load_lm(build_lm(d / "corpus.txt", d / "lm", LMConfig(order=2)).binary)


@pytest.mark.parametrize("method", ["greedy", "beam"])
def test_final_transcript_and_word_times_equal_decode(method, words_lm, tmp_path):
    rec = random_model("1d", "gru", 3, seed=5, output_scale=30.0)
    config = DecodeConfig(method=method, beam_size=16, alpha=0.5, beta=1.0)
    decoder = Decoder(rec, config, words_lm if method == "beam" else None)
    wave = make_audio(1.6, seed=2)
    path = tmp_path / "clip.wav"
    from ds2cli.audio import read_audio, write_audio

    write_audio(path, wave, RATE)
    wave = read_audio(path, RATE)  # as decode reads it (16-bit)
    want = decoder.decode_files([str(path)])[0][0]
    assert len(want.text) > 3
    for chunk in (160, 2560, 4000):
        events = events_of(StreamRecognizer.from_decoder(decoder, EndpointConfig.never()), wave, chunk)
        finals = [e for e in events if e["type"] == "final"]
        assert len(finals) == 1 and events[-1] is finals[0]
        assert finals[0]["text"] == want.text and finals[0]["words"] == want.timing
        partials = [e["text"] for e in events if e["type"] == "partial"]
        assert partials and all(e["segment"] == 0 for e in events)


def test_a_served_model_warmed_up_recognises_as_a_fresh_one(words_lm):
    """The server warms its network and search up before listening; nothing of it may leak into
    the streams it then serves."""
    from ds2cli.serve.service import RecognitionService

    rec = random_model("1d", "gru", 3, seed=5, output_scale=30.0)
    decoder = Decoder(rec, DecodeConfig(method="beam", beam_size=16, alpha=0.5, beta=1.0), words_lm)
    wave = make_audio(1.6, seed=2)
    fresh = events_of(StreamRecognizer.from_decoder(decoder), wave, 2560)
    service = RecognitionService(decoder)
    service.warm_up()
    assert events_of(service.recognizer(), wave, 2560) == fresh
    assert fresh[-1]["type"] == "final" and fresh[-1]["text"]


def spelled(text: str, blanks: int = 1, confidence: float = 0.9) -> np.ndarray:
    """Emissions (T, V) that spell `text` greedily: each character for two frames, then
    `blanks` blank frames."""
    rows = []
    for ch in text:
        for token, count in ((TOK.encode(ch)[0], 2), (0, blanks)):
            for _ in range(count):
                p = np.full(len(TOK), (1 - confidence) / (len(TOK) - 1))
                p[token] = confidence
                rows.append(np.log(p))
    return np.array(rows, dtype=np.float32)


def silence(seconds: float, frame_seconds: float) -> np.ndarray:
    """Blank frames (T, V) lasting `seconds`."""
    p = np.full(len(TOK), 0.1 / (len(TOK) - 1))
    p[0] = 0.9
    return np.repeat(np.log(p)[None].astype(np.float32), round(seconds / frame_seconds), 0)


def feed(rec: StreamRecognizer, emissions: np.ndarray, chunk: int = 5) -> list[dict]:
    events = []
    for i in range(0, len(emissions), chunk):
        events += rec.on_emissions(emissions[i:i + chunk])
    return events


def test_silence_closes_segments_and_greedy_text_is_unchanged():
    """Speech, 1.5 s of blank frames, speech: two finals whose texts together are the greedy
    transcript of all the frames, with word times in stream seconds."""
    model = StreamingModel(random_model())
    fs = model.frame_seconds
    first, gap, second = spelled("set a timer "), silence(1.5, fs), spelled("for ten")
    frames = np.concatenate([first, gap, second])
    whole = Decoder(model.recognizer, DecodeConfig(method="greedy")).transcripts(["x"], [frames], [0.0])[0]
    endpoint = EndpointConfig(silence_after_speech_ms=600, silence_before_speech_ms=2400, max_segment_s=20)
    rec = StreamRecognizer(model, SearchConfig(), endpoint)
    events = feed(rec, frames) + rec.finish()
    finals = [e for e in events if e["type"] == "final"]
    assert [f["text"] for f in finals] == ["set a timer", "for ten"]
    assert [f["segment"] for f in finals] == [0, 1]
    cut = round((len(first) - 1 + round(0.6 / fs)) * fs, 3)  # 600 ms of blanks after the last space
    assert finals[0]["end"] == pytest.approx(cut) and finals[1]["start"] == pytest.approx(cut)
    assert finals[0]["words"] + finals[1]["words"] == whole.timing
    assert all(e["segment"] == 1 for e in events[events.index(finals[0]) + 1:])
    partials = [e["text"] for e in events if e["type"] == "partial" and e["segment"] == 0]
    assert len(partials) > 3 and all("set a timer".startswith(p) for p in partials) and partials[-1] == "set a timer"


def test_long_silence_and_max_segment_keep_state_bounded():
    model = StreamingModel(random_model())
    fs = model.frame_seconds
    endpoint = EndpointConfig(silence_after_speech_ms=600, silence_before_speech_ms=1000, max_segment_s=2.0)
    rec = StreamRecognizer(model, SearchConfig(), endpoint)
    events, quiet = [], silence(0.52, fs)
    for _ in range(20):  # 10.4 s of blanks: the segment restarts every second, no finals
        events += rec.on_emissions(quiet)
        assert rec.frames - rec.seg_start < round(1.0 / fs)
    assert not [e for e in events if e["type"] == "final"]
    restart = 20 * len(quiet) // round(1.0 / fs) * round(1.0 / fs)  # the frame of the last restart
    talk = spelled("word " * 20)  # 12 s of speech without a long pause: cut at the maximum length
    for i in range(0, len(talk), 7):
        events += rec.on_emissions(talk[i:i + 7])
        assert rec.frames - rec.seg_start < round(2.0 / fs)
    events += rec.finish()
    finals = [e for e in events if e["type"] == "final"]
    assert finals[0]["start"] == pytest.approx(restart * fs)
    assert all(f["end"] - f["start"] == pytest.approx(2.0) for f in finals[:-1])
    assert len(finals) == -(-(20 * len(quiet) - restart + len(talk)) // round(2.0 / fs))
    assert all(f["text"] for f in finals) and [f["segment"] for f in finals] == list(range(len(finals)))


def test_silence_only_stream_ends_with_one_empty_final():
    model = StreamingModel(random_model())
    rec = StreamRecognizer(model, SearchConfig())
    events = rec.on_emissions(silence(1.0, model.frame_seconds)) + rec.finish()
    finals = [e for e in events if e["type"] == "final"]
    assert len(finals) == 1 and finals[0]["text"] == "" and finals[0]["words"] == []
