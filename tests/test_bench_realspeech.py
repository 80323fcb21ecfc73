"""The real-speech benchmark's pieces on tiny settings: its commands, and a from-scratch run plus
its averaged checkpoint on a 6-speaker speechocean762 subset, 2 short epochs."""
import json

from benchmarks import realspeech
from test_prepare_kaldi import _small_speechocean


def test_commands_name_the_configuration():
    from pathlib import Path

    cmd = realspeech.train_command("pooled", Path("exp"), "so", "pre.pt", "exp/tiny/manifests/train.jsonl", ["train.epochs=1"])
    assert cmd[:4] == ["ds2cli", "train", "--recipe", "speechocean"] and "--init-from" in cmd
    assert any(c.startswith("train.pool=") and "weight = 1.0" in c for c in cmd)
    assert "--init-from" not in realspeech.train_command("scratch", Path("exp"), "so", "pre.pt", "m", [])
    dec = realspeech.decode_commands(Path("c.pt"), Path("t.jsonl"), Path("o"))
    assert "--no-lm" in dec["greedy"] and "--no-lm" not in dec["lm"]


def test_recorded_commands_name_no_path_of_the_machine(tmp_path):
    from benchmarks.paths import REPO

    cmd = ["ds2cli", "decode", "--checkpoint", str(REPO / "exp" / "c.pt"), "--manifest", str(tmp_path / "a" / "t.jsonl")]
    text = realspeech.recorded(cmd)
    assert "--checkpoint exp/c.pt" in text and f"{tmp_path.name}/a/t.jsonl" in text and str(tmp_path) not in text


def test_scratch_and_averaged_on_a_small_subset(speechocean_dir, noise_dir, tmp_path):
    _small_speechocean(speechocean_dir, tmp_path / "so", {"train": 5, "test": 1})
    sets = ["model.rnn_hidden=32", "model.conv=[{channels = 16, kernel = [1, 5], stride = [1, 3]}]",
            "train.epochs=2", "train.max_batch_seconds=30.0", "train.num_workers=0", "train.threads=1",
            f"train.noise_dir={json.dumps(str(noise_dir))}", "data.options.dev_speakers=1",
            "data.stats_utterances=20", "train.keep_last_epochs=2"]
    out = tmp_path / "results.json"
    realspeech.main(["--configs", "scratch", "averaged", "--exp-root", str(tmp_path / "exp"), "--data-dir",
                     str(tmp_path / "so"), "--limit", "5", "--average-last", "2", "--out", str(out)]
                    + [a for s in sets for a in ("--set", s)])
    results = json.loads(out.read_text())
    assert results["scratch"]["epochs"] == 2 and results["averaged"]["of"] == "scratch"
    for config in ("scratch", "averaged"):
        for kind in ("greedy", "lm"):
            assert results[config][kind]["utterances"] == 5 and results[config][kind]["wer"] >= 0
            assert results[config][kind]["command"].startswith("ds2cli decode")
