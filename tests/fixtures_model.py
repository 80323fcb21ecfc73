"""A real, briefly trained Deep Speech 2 model for decoding tests.

Connected-digit utterances are spliced from FSDD clips of one speaker (exact transcripts,
TIDIGITS style) into a temporary folder, and a small DS2 (1D conv, one bidirectional GRU layer)
is trained on them with CTC until greedy decoding gets most characters right. The model
overfits its few utterances on purpose: the tests need a real network whose output is
non-trivial on real audio, not a good recogniser. Training stops at a CER target or a step cap
(about half a minute on one thread); the result is memoised per process so several test modules
share one training run."""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DIGITS = "zero one two three four five six seven eight nine".split()
SPEAKER = "george"


@dataclass
class DigitsModel:
    checkpoint: Path
    manifest: Path  # the training utterances (audio + reference)
    texts: list[str]
    work: Path
    greedy_cer: float
    steps: int


_MEMO: dict[str, DigitsModel] = {}


def splice_digits(fsdd_dir: Path, out_dir: Path, n_utts: int = 8, seed: int = 0) -> list[dict]:
    """Write `n_utts` 16 kHz WAVs of 2-4 digits of one speaker with short silences; manifest rows."""
    from ds2cli.audio import read_audio, write_audio

    rng = random.Random(seed)
    rows = []
    for u in range(n_utts):
        digits = [rng.randrange(10) for _ in range(rng.randint(2, 4))]
        parts = []
        for d in digits:
            clip = read_audio(fsdd_dir / "recordings" / f"{d}_{SPEAKER}_{rng.randrange(5, 50)}.wav", 16000)
            parts += [np.zeros(1600, dtype=np.float32), clip]
        wave = np.concatenate(parts + [np.zeros(1600, dtype=np.float32)])
        path = out_dir / f"digits_{u}.wav"
        write_audio(path, wave, 16000)
        rows.append({"audio_filepath": str(path), "duration": len(wave) / 16000,
                     "text": " ".join(DIGITS[d] for d in digits), "id": f"digits_{u}"})
    return rows


def train_digits_model(fsdd_dir: Path, work: Path, max_steps: int = 400, target_cer: float = 0.1) -> DigitsModel:
    key = str(work)
    if key in _MEMO:
        return _MEMO[key]
    import torch

    from ds2cli.audio import read_audio
    from ds2cli.checkpoint import build_checkpoint, save_checkpoint
    from ds2cli.ctc import greedy_text
    from ds2cli.features import FeatureConfig, FeatureStats, log_spectrogram
    from ds2cli.manifest import write_manifest
    from ds2cli.metrics import cer
    from ds2cli.model import ConvLayer, DeepSpeech2, ModelConfig
    from ds2cli.text import CharTokenizer

    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    work.mkdir(parents=True, exist_ok=True)
    rows = splice_digits(fsdd_dir, work)
    manifest = work / "train.jsonl"
    write_manifest(manifest, rows)
    tok = CharTokenizer.english()
    fcfg = FeatureConfig()
    feats = [log_spectrogram(torch.from_numpy(read_audio(r["audio_filepath"])), fcfg) for r in rows]
    allf = torch.cat(feats)
    stats = FeatureStats(allf.mean(0).tolist(), allf.std(0).clamp_min(1e-3).tolist())
    feats = [stats.normalise(f) for f in feats]
    cfg = ModelConfig(conv_type="1d", conv=[ConvLayer(96, (1, 11), (1, 2))], rnn_type="gru",
                      rnn_layers=1, rnn_hidden=96, bidirectional=True)
    model = DeepSpeech2(cfg, len(tok))
    lengths = torch.tensor([len(f) for f in feats])
    batch = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
    targets = [torch.tensor(tok.encode(r["text"])) for r in rows]
    flat, target_lengths = torch.cat(targets), torch.tensor([len(t) for t in targets])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    ctc = torch.nn.CTCLoss(zero_infinity=True)
    texts = [r["text"] for r in rows]
    score, step = 1.0, 0
    for step in range(1, max_steps + 1):
        model.train()
        logits, out_lengths = model(batch, lengths)
        loss = ctc(logits.log_softmax(-1).transpose(0, 1), flat, out_lengths, target_lengths)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        if step % 25 == 0:
            model.eval()
            with torch.no_grad():
                logits, out_lengths = model(batch, lengths)
            hyps = [greedy_text(lg[:n].log_softmax(-1), tok) for lg, n in zip(logits, out_lengths)]
            score = cer(texts, hyps)
            if score <= target_cer:
                break
    model.eval()
    ckpt = work / "checkpoints" / "best.pt"
    save_checkpoint(ckpt, build_checkpoint(model, tok, fcfg, stats, recipe={"name": "digits-test"},
                                           metrics={"greedy_cer": score}))
    torch.set_num_threads(threads)
    _MEMO[key] = DigitsModel(ckpt, manifest, texts, work, score, step)
    return _MEMO[key]
