"""Training: the length-bucketed SortaGrad sampler, the dataset and collate, real training steps on
real speech (a few ARCTIC utterances), checkpoints, non-finite losses, recipes and the CLI."""
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from ds2cli.data import BucketBatchSampler, SpeechDataset, collate, make_batches
from ds2cli.errors import DS2Error, RecipeError

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- a small prepared experiment

def make_exp(exp: Path, arctic_dir: Path, n_train: int = 8, n_dev: int = 4, max_duration: float = 3.2) -> Path:
    """A prepared experiment directory from the shortest ARCTIC recordings (manifests point at
    ../shared/data; nothing is copied)."""
    from ds2cli.audio import audio_info
    from ds2cli.features import FeatureConfig, stats_from_manifest
    from ds2cli.fileio import write_json, write_text
    from ds2cli.manifest import write_manifest
    from ds2cli.text import CharTokenizer, normalize

    rows = []
    for f in sorted(arctic_dir.glob("*.flac")):
        d = audio_info(f).duration
        if d <= max_duration:
            rows.append({"audio_filepath": str(f), "duration": round(d, 4), "id": f.stem,
                         "text": normalize(f.with_suffix(".txt").read_text(encoding="utf-8"), "en")})
        if len(rows) == n_train + n_dev:
            break
    write_manifest(exp / "manifests" / "train.jsonl", rows[:n_train])
    write_manifest(exp / "manifests" / "dev.jsonl", rows[n_train:])
    write_json(exp / "tokenizer.json", CharTokenizer.english().to_dict())
    write_json(exp / "feature_stats.json", stats_from_manifest(rows[:n_train], FeatureConfig(), 8).to_dict())
    write_text(exp / ".prepared", "")
    return exp


def small_recipe(**train) -> dict:
    """A model that trains in well under a second per step on one thread."""
    return {
        "name": "unit",
        "data": {"corpus": "arctic"},
        "model": {"conv_type": "1d", "conv": [{"channels": 32, "kernel": [1, 5], "stride": [1, 2]}],
                  "rnn_layers": 1, "rnn_hidden": 32},
        "train": {"optimizer": "adamw", "lr": 3e-3, "epochs": 2, "max_batch_seconds": 7.0,
                  "num_workers": 0, "threads": 1, "log_every": 1, **train},
    }


@pytest.fixture
def exp(tmp_path, arctic_dir) -> Path:
    return make_exp(tmp_path / "exp", arctic_dir)


def step_losses(exp: Path) -> list[float]:
    rows = [json.loads(line) for line in (exp / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if r.get("type") != "epoch"]


# ---------------------------------------------------------------- batches

DURATIONS = [3.0, 1.0, 2.5, 0.5, 4.0, 1.5, 2.0, 3.5, 0.7, 1.2, 2.2, 9.0]


def test_batches_bounded_by_total_audio_and_sorted():
    batches = make_batches(DURATIONS, max_batch_seconds=6.0)
    assert sorted(i for b in batches for i in b) == list(range(len(DURATIONS)))
    longest = [max(DURATIONS[i] for i in b) for b in batches]
    assert longest == sorted(longest)  # increasing length (SortaGrad order)
    for b in batches:
        padded = len(b) * max(DURATIONS[i] for i in b)
        assert padded <= 6.0 or len(b) == 1  # only a lone over-long utterance may exceed
    assert [11] in batches  # the 9 s utterance is alone
    assert max(len(b) for b in make_batches(DURATIONS, 100.0, max_batch_size=3)) == 3


def test_batches_multiple_of_world_size():
    batches = make_batches(DURATIONS, 6.0, multiple=2)
    assert all(len(b) % 2 == 0 and b for b in batches)
    assert len({i for b in batches for i in b}) == len(DURATIONS)  # 12 items: none dropped


def test_sortagrad_first_epoch_then_shuffled_and_deterministic():
    first = list(BucketBatchSampler(DURATIONS, 6.0, seed=3, epoch=0))
    longest = [max(DURATIONS[i] for i, _ in b) for b in first]
    assert longest == sorted(longest)
    assert all(e == 0 for b in first for _, e in b)
    later = [list(BucketBatchSampler(DURATIONS, 6.0, seed=3, epoch=e)) for e in (1, 2)]
    assert later[0] == list(BucketBatchSampler(DURATIONS, 6.0, seed=3, epoch=1))  # replayable
    orders = [[max(DURATIONS[i] for i, _ in b) for b in batches] for batches in later]
    assert orders[0] != sorted(orders[0]) or orders[1] != sorted(orders[1])
    assert later[0] != later[1]
    for batches in later:
        assert sorted(i for b in batches for i, _ in b) == list(range(len(DURATIONS)))
    no_sortagrad = list(BucketBatchSampler(DURATIONS, 6.0, seed=3, epoch=0, sortagrad=False))
    assert no_sortagrad != first


def test_sampler_resumes_from_a_position_and_longest_first():
    full = list(BucketBatchSampler(DURATIONS, 6.0, seed=1, epoch=2))
    assert list(BucketBatchSampler(DURATIONS, 6.0, seed=1, epoch=2, start=3)) == full[3:]
    lf = list(BucketBatchSampler(DURATIONS, 6.0, seed=1, epoch=0, longest_first=True))
    cost = [len(b) * max(DURATIONS[i] for i, _ in b) for b in lf]
    assert cost[0] == max(cost)


def test_distributed_shards_make_up_the_global_batch():
    durations = DURATIONS[:10]
    one = list(BucketBatchSampler(durations, 100.0, seed=5, epoch=1, world_size=1, max_batch_size=4))
    ranks = [list(BucketBatchSampler(durations, 50.0, seed=5, epoch=1, rank=r, world_size=2, max_batch_size=2))
             for r in range(2)]
    assert len(ranks[0]) == len(ranks[1])
    for r0, r1 in zip(*ranks):
        assert len(r0) == len(r1) and not {i for i, _ in r0} & {i for i, _ in r1}
    merged = [sorted(i for i, _ in r0 + r1) for r0, r1 in zip(*ranks)]
    assert merged == [sorted(i for i, _ in b) for b in one]


# ---------------------------------------------------------------- dataset

def test_dataset_and_collate_on_real_audio(exp):
    from ds2cli.features import FeatureConfig, FeatureStats
    from ds2cli.manifest import read_manifest
    from ds2cli.text import CharTokenizer

    rows = read_manifest(exp / "manifests" / "train.jsonl")[:3]
    stats = FeatureStats.from_dict(json.loads((exp / "feature_stats.json").read_text()))
    ds = SpeechDataset(rows, CharTokenizer.english(), FeatureConfig(), stats)
    items = [ds[(i, 0)] for i in range(3)]
    batch = collate(items)
    assert batch.feats.shape == (3, int(batch.lengths.max()), 161)
    for i, (f, ids, utt, text, dur) in enumerate(items):
        assert abs(f.shape[0] - (dur * 100 + 1)) <= 2
        assert torch.equal(batch.feats[i, : f.shape[0]], f)
        assert batch.feats[i, f.shape[0]:].abs().sum() == 0
        assert CharTokenizer.english().decode(ids) == rows[i]["text"] == text
    assert int(batch.target_lengths.sum()) == batch.targets.numel()


def test_dataset_augmentation_is_fresh_per_epoch_and_replayable(exp):
    pytest.importorskip("ds2cli.augment")
    from ds2cli.augment import AugmentConfig, build_pipeline
    from ds2cli.features import FeatureConfig, FeatureStats
    from ds2cli.manifest import read_manifest
    from ds2cli.text import CharTokenizer

    pipe = build_pipeline(AugmentConfig.from_list([{"type": "noise", "prob": 1.0, "params": {"snr": [0, 5]}}]))
    rows = read_manifest(exp / "manifests" / "train.jsonl")[:1]
    stats = FeatureStats.from_dict(json.loads((exp / "feature_stats.json").read_text()))
    ds = SpeechDataset(rows, CharTokenizer.english(), FeatureConfig(), stats, pipe, seed=0)
    clean = SpeechDataset(rows, CharTokenizer.english(), FeatureConfig(), stats)[(0, 0)][0]
    e0, e0b, e1 = ds[(0, 0)][0], ds[(0, 0)][0], ds[(0, 1)][0]
    assert torch.equal(e0, e0b)
    assert not torch.allclose(e0, e1)
    assert not torch.allclose(e0, clean)


# ---------------------------------------------------------------- real training

def test_training_reduces_the_loss_and_writes_its_files(exp):
    from ds2cli.trainer import train

    recipe = small_recipe(epochs=6, lr=3e-3, anneal=1.0)
    report = train(recipe, exp)
    losses = step_losses(exp)
    assert report.steps == len(losses) and report.epochs == 6
    assert sum(losses[-4:]) / 4 < 0.8 * sum(losses[:4]) / 4
    ckpts = exp / "checkpoints"
    assert (ckpts / "last.pt").is_file() and (ckpts / "best.pt").is_file()
    assert len(list(ckpts.glob("epoch-*.pt"))) == 1  # keep_best = 1
    assert (exp / "curves.png").stat().st_size > 1000
    saved = json.loads((exp / "train_report.json").read_text())
    assert saved["best_dev_wer"] is not None and len(saved["history"]) == 6
    assert (exp.parent / "LAST").read_text().splitlines()[1] == str(exp.resolve())


def test_checkpoint_round_trip_weights_only(exp):
    from ds2cli.checkpoint import model_from_checkpoint
    from ds2cli.inference import Recognizer
    from ds2cli.trainer import train

    train(small_recipe(epochs=1), exp)
    raw = torch.load(exp / "checkpoints" / "last.pt", weights_only=True)
    for key in ("model_config", "tokenizer", "feature_config", "feature_stats", "model_state", "train_state"):
        assert key in raw
    ts = raw["train_state"]
    assert ts["position"]["epoch"] == 1 and ts["position"]["batch"] == 0 and "optimizer" in ts
    assert "torch" in ts["rng"] and ts["config"]["optimizer"] == "adamw"
    model = model_from_checkpoint(raw)
    rec = Recognizer.from_checkpoint(exp / "checkpoints" / "best.pt")
    x = torch.randn(1, 80, 161)
    with torch.no_grad():
        assert torch.equal(model(x, torch.tensor([80]))[0], rec.model(x, torch.tensor([80]))[0])


def test_resume_continues_where_it_stopped(tmp_path, arctic_dir):
    """Stopping after 3 steps and resuming ends with the same weights as one uninterrupted run."""
    from ds2cli.trainer import train

    a, b = make_exp(tmp_path / "a", arctic_dir), make_exp(tmp_path / "b", arctic_dir)
    train(small_recipe(epochs=2), a)
    stopped = train(small_recipe(epochs=2, max_steps=3), b)
    assert stopped.steps == 3
    resumed = train(small_recipe(epochs=2), b)
    assert resumed.steps == json.loads((a / "train_report.json").read_text())["steps"]
    wa = torch.load(a / "checkpoints" / "last.pt", weights_only=True)["model_state"]
    wb = torch.load(b / "checkpoints" / "last.pt", weights_only=True)["model_state"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert step_losses(a) == step_losses(b)


def test_non_finite_batch_is_skipped_and_weights_kept(exp):
    """A transcript longer than its frames makes the CTC loss infinite: the step is skipped."""
    from ds2cli.data import Batch
    from ds2cli.trainer import Trainer

    trainer = Trainer(small_recipe(), exp)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items() if "running" not in k}
    batch = Batch(torch.randn(1, 20, 161), torch.tensor([20]), torch.arange(1, 16), torch.tensor([15]),
                  ["x"], ["x"], [0.2])
    loss, ok = trainer.train_step([batch], 1, 0)
    assert not ok and not torch.isfinite(loss)
    after = trainer.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_too_many_bad_batches_in_a_row_stop_the_run(exp):
    """A diverging run (an absurd learning rate) stops with a clear message."""
    from ds2cli.trainer import train

    recipe = small_recipe(optimizer="sgd", lr=1e30, momentum=0.0, grad_clip=0.0, max_bad_batches=2, epochs=3)
    with pytest.raises(DS2Error, match="2 batches in a row had a non-finite loss"):
        train(recipe, exp)


def test_impossible_transcripts_are_dropped_and_counted(exp):
    from ds2cli.manifest import read_manifest, write_manifest
    from ds2cli.trainer import Trainer

    rows = read_manifest(exp / "manifests" / "train.jsonl")
    rows[0]["duration"] = 0.05  # 6 frames cannot carry a sentence
    write_manifest(exp / "manifests" / "train.jsonl", rows)
    trainer = Trainer(small_recipe(), exp)
    assert trainer.dropped == {"transcript too long for its audio": 1}
    assert len(trainer.train_rows) == len(rows) - 1


# ---------------------------------------------------------------- recipes and CLI

def test_shipped_recipes_load():
    from ds2cli.features import FeatureConfig
    from ds2cli.model import ModelConfig
    from ds2cli.recipe import load_recipe, section
    from ds2cli.trainer import TrainConfig
    from ds2cli.data_prep.common import DataConfig

    for name in ("tiny", "digits", "arctic", "librispeech", "aishell"):
        recipe = load_recipe(name)
        section(recipe, "train", TrainConfig)
        section(recipe, "model", ModelConfig)
        section(recipe, "data", DataConfig)
        section(recipe, "features", FeatureConfig)
        assert recipe["decode"]["beam_size"] > 0 and recipe["lm"]["order"] >= 3


def test_unknown_recipe_key_is_an_error(exp):
    from ds2cli.trainer import Trainer

    with pytest.raises(RecipeError, match=r"unknown key\(s\) in \[train\]: epoks"):
        Trainer({**small_recipe(), "train": {"epoks": 3}}, exp)
    from ds2cli.cli import main

    result = CliRunner().invoke(main, ["train", "--exp-dir", str(exp), "--set", "train.epoks=3"])
    assert result.exit_code == 1 and "epoks" in result.output


def test_cli_help_and_json(exp, tmp_path):
    from ds2cli.cli import main

    result = CliRunner().invoke(main, ["train", "--help"])
    assert result.exit_code == 0 and "--nproc" in result.output and "--longest-first" in result.output
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        'name = "r"\n[data]\ncorpus = "arctic"\n[model]\nconv_type = "1d"\n'
        'conv = [{channels = 16, kernel = [1, 5], stride = [1, 2]}]\nrnn_layers = 1\nrnn_hidden = 16\n'
        '[train]\nepochs = 1\nnum_workers = 0\nthreads = 1\noptimizer = "adamw"\nmax_batch_seconds = 7.0\n')
    result = CliRunner().invoke(main, ["train", "--recipe", str(recipe), "--exp-dir", str(exp), "--json",
                                       "--quiet", "--longest-first", "--precision", "bf16"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["epochs"] == 1 and out["bad_batches"] == 0
    saved = torch.load(exp / "checkpoints" / "last.pt", weights_only=True)
    assert saved["train_state"]["config"]["precision"] == "bf16"
    result = CliRunner().invoke(main, ["train", "--recipe", str(recipe), "--exp-dir", str(exp),
                                       "--precision", "fp16", "--device", "cpu", "--no-resume"])
    assert result.exit_code == 1 and "fp16 training needs a GPU" in result.output
