"""NTM training, evaluation, checkpoints and the `ds2cli ntm` commands, on tiny real runs."""
import json

import pytest
import torch
from click.testing import CliRunner

from ds2cli.cli import main
from ds2cli.errors import DS2Error
from ds2cli.ntm.machine import NTMConfig
from ds2cli.ntm.tasks import CopyTask, NGramTask
from ds2cli.ntm.fit import (NTMTrainConfig, evaluate, load_ntm_checkpoint, new_run, sequence_metrics,
                            fit, train_step)

TINY = ["--batch-size", "2", "--memory-rows", "16", "--memory-width", "6", "--controller-size", "16", "--eval-sequences", "4"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_run(seed=0, **kw):
    task = CopyTask(max_len=4)
    cfg = NTMConfig(task.input_size, task.output_size, hidden_size=16, memory_rows=8, memory_width=6, **kw)
    return new_run(task, cfg, NTMTrainConfig(batch_size=2, lr=1e-2, seed=seed, checkpoint_every=3))


def test_cost_in_bits_and_bit_errors():
    task = CopyTask()
    b = task.batch(2, torch.Generator().manual_seed(0), 3)
    # Perfectly confident right answers: no cost, no errors; logit 0 everywhere: 1 bit per scored bit.
    sure = (b.targets * 2 - 1) * 50
    cost, errors = sequence_metrics(sure, b)
    assert torch.all(cost < 1e-6) and torch.all(errors == 0)
    cost, errors = sequence_metrics(torch.zeros_like(b.targets), b)
    torch.testing.assert_close(cost, torch.full((2,), 24.0))  # 3 steps x 8 bits x 1 bit
    flipped = -sure
    assert torch.all(sequence_metrics(flipped, b)[1] == 24)


def test_training_reduces_cost():
    run = tiny_run()
    gen = torch.Generator().manual_seed(1)
    fixed = run.task.batch(8, gen, 3)
    before = sequence_metrics(run.model(fixed.inputs), fixed)[0].mean()
    for _ in range(40):
        train_step(run, fixed)
    after = sequence_metrics(run.model(fixed.inputs), fixed)[0].mean()
    assert after < 0.8 * before


def test_checkpoint_round_trip_resumes_exactly(tmp_path):
    straight = fit(tiny_run(), 6)
    half = fit(tiny_run(), 3, out_dir=tmp_path)
    assert (tmp_path / "best.pt").is_file() and (tmp_path / "last.pt").is_file()
    ck = torch.load(tmp_path / "last.pt", weights_only=True)
    assert ck["format"] == "ds2cli-ntm-checkpoint" and ck["step"] == 3 and ck["task"]["task"] == "copy"
    resumed = load_ntm_checkpoint(tmp_path / "last.pt")
    assert resumed.model_cfg == half.model_cfg and resumed.task == half.task
    for a, b in zip(resumed.model.state_dict().values(), half.model.state_dict().values()):
        assert torch.equal(a, b)
    fit(resumed, 3)
    for a, b in zip(resumed.model.state_dict().values(), straight.model.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_bad_checkpoints_name_the_file(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(DS2Error, match="garbage.pt"):
        load_ntm_checkpoint(garbage)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}}, other)
    with pytest.raises(DS2Error, match="other.pt: not a ds2cli NTM checkpoint"):
        load_ntm_checkpoint(other)
    with pytest.raises(DS2Error, match="missing.pt: checkpoint not found"):
        load_ntm_checkpoint(tmp_path / "missing.pt")


def test_evaluation_is_the_same_set_for_every_model():
    task = NGramTask()
    a = evaluate(tiny_ngram_model(0), task, 60, sequences=10, seed=3, batch_size=4)
    b = evaluate(tiny_ngram_model(1), task, 60, sequences=10, seed=3, batch_size=10)
    assert a.optimal_cost == pytest.approx(b.optimal_cost, rel=1e-6)
    assert a.optimal_cost < 55  # 55 scored bits; the optimal estimator does better than chance
    assert a.cost != b.cost


def tiny_ngram_model(seed):
    torch.manual_seed(seed)
    from ds2cli.ntm.machine import build_machine

    return build_machine(NTMConfig(1, 1, hidden_size=8, memory_rows=8, memory_width=4))


def test_cli_help_for_every_task():
    runner = CliRunner()
    for name in ("copy", "repeat-copy", "associative-recall", "ngrams", "priority-sort"):
        res = runner.invoke(main, ["ntm", name, "--help"])
        assert res.exit_code == 0 and "--eval-len" in res.output and "--checkpoint" in res.output
    assert "--max-repeats" in runner.invoke(main, ["ntm", "repeat-copy", "--help"]).output
    assert "--max-items" in runner.invoke(main, ["ntm", "associative-recall", "--help"]).output


def test_cli_train_eval_only_and_plots(tmp_path):
    runner = CliRunner()
    out = tmp_path / "exp"
    res = runner.invoke(main, ["ntm", "copy", "--steps", "20", "--checkpoint-every", "10", "--out", str(out),
                               "--eval-len", "3", "--eval-len", "30", "--json", *TINY])
    assert res.exit_code == 0, res.output
    result = json.loads(res.output)
    assert result["training"]["steps"] == 20 and result["training"]["sequences"] == 40
    assert [r["length"] for r in result["evaluation"]] == ["3", "30"]
    assert result["evaluation"][1]["bit_errors"] > 0  # untrained: length 30 is not solved
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file()

    plots = tmp_path / "plots"
    res = runner.invoke(main, ["ntm", "copy", "--checkpoint", str(out / "last.pt"), "--eval-only",
                               "--eval-len", "5", "--plot", str(plots), "--eval-sequences", "4"])
    assert res.exit_code == 0, res.output
    assert "bit errors/seq" in res.output and "     5 " in res.output
    png = plots / "copy-5.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_other_tasks_and_lstm_baseline(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["ntm", "repeat-copy", "--steps", "2", "--out", str(tmp_path / "r"),
                               "--eval-len", "2x3", "--plot", str(tmp_path / "p"), *TINY])
    assert res.exit_code == 0, res.output
    assert "2x3" in res.output and (tmp_path / "p" / "repeat-copy-2x3.png").is_file()
    res = runner.invoke(main, ["ntm", "ngrams", "--steps", "2", "--model", "lstm", "--out", str(tmp_path / "n"),
                               "--eval-len", "30", "--json", *TINY])
    assert res.exit_code == 0, res.output
    ev = json.loads(res.output)["evaluation"][0]
    assert ev["optimal_cost"] is not None and json.loads(res.output)["model"]["model"] == "lstm"
    res = runner.invoke(main, ["ntm", "associative-recall", "--steps", "2", "--controller", "ff", "--heads", "2",
                               "--write-init", "sequential", "--out", str(tmp_path / "a"), "--eval-len", "3",
                               "--json", *TINY])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["model"]["write_init"] == "sequential"
    res = runner.invoke(main, ["ntm", "priority-sort", "--steps", "1", "--out", str(tmp_path / "s"),
                               "--eval-len", "6", *TINY])
    assert res.exit_code == 0, res.output


def test_cli_errors(tmp_path):
    runner = CliRunner()
    bad = tmp_path / "bad.pt"
    bad.write_text("junk")
    res = runner.invoke(main, ["ntm", "copy", "--checkpoint", str(bad), "--eval-only"])
    assert res.exit_code == 1 and "bad.pt" in res.output and "Traceback" not in res.output
    res = runner.invoke(main, ["ntm", "copy", "--eval-only"])
    assert res.exit_code == 1 and "--eval-only needs --checkpoint" in res.output
    res = runner.invoke(main, ["ntm", "repeat-copy", "--steps", "0", "--eval-len", "7", "--out", str(tmp_path)])
    assert res.exit_code == 1 and "LENGTHxREPEATS" in res.output


def test_lr_drops_once_when_solved():
    from ds2cli.ntm.fit import maybe_drop_lr

    run = tiny_run()
    assert not maybe_drop_lr(run, 5.0)  # not solved yet
    assert maybe_drop_lr(run, 0.5)
    assert not maybe_drop_lr(run, 0.0)  # only once
    assert run.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)


def test_task_defaults_choose_the_lr_drop():
    from ds2cli.ntm.run import NTMOptions, _build_run

    # Copy trains without the drop (measured better at every length); the other tasks keep it.
    assert _build_run(NTMOptions(task="copy")).train_cfg.lr_drop_below is None
    assert _build_run(NTMOptions(task="repeat-copy")).train_cfg.lr_drop_below == 1.0


def test_lr_schedule_warm_up_then_cosine_to_the_final_fraction():
    from ds2cli.ntm.fit import lr_factor

    cfg = NTMTrainConfig(steps=110, lr=1e-3, lr_schedule="cosine", warmup_steps=10, lr_final=0.1)
    assert lr_factor(cfg, 0) == pytest.approx(0.1) and lr_factor(cfg, 9) == pytest.approx(1.0)  # linear warm-up
    assert lr_factor(cfg, 10) == pytest.approx(1.0)
    assert lr_factor(cfg, 60) == pytest.approx(0.55)  # half way: the mean of 1 and 0.1
    assert lr_factor(cfg, 110) == pytest.approx(0.1)
    factors = [lr_factor(cfg, s) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(factors, factors[1:]))
    assert lr_factor(NTMTrainConfig(steps=50), 49) == 1.0
    with pytest.raises(DS2Error, match="schedule"):
        lr_factor(NTMTrainConfig(lr_schedule="linear"), 0)


def test_step_schedule_drops_at_the_given_fraction():
    from ds2cli.ntm.fit import lr_factor

    cfg = NTMTrainConfig(steps=100, lr_schedule="step", lr_final=0.1, decay_at=0.75)
    assert [lr_factor(cfg, s) for s in (0, 74, 75, 99)] == pytest.approx([1.0, 1.0, 0.1, 0.1])
    warm = NTMTrainConfig(steps=100, lr_schedule="step", lr_final=0.1, decay_at=0.5, warmup_steps=4)
    assert [lr_factor(warm, s) for s in (0, 3, 49, 50)] == pytest.approx([0.25, 1.0, 1.0, 0.1])


def test_scheduled_lr_reaches_the_optimiser_and_keeps_the_drop():
    from ds2cli.ntm.fit import maybe_drop_lr

    task = CopyTask(max_len=4)
    cfg = NTMConfig(task.input_size, task.output_size, hidden_size=16, memory_rows=8, memory_width=6)
    run = new_run(task, cfg, NTMTrainConfig(steps=4, batch_size=2, lr=1e-2, lr_schedule="cosine", warmup_steps=2))
    seen = []
    for _ in range(4):
        train_step(run, task.batch(2, run.gen))
        seen.append(run.optimizer.param_groups[0]["lr"])
        run.step += 1
    assert seen == pytest.approx([5e-3, 1e-2, 1e-2, 5e-3])  # warm-up, then the cosine from step 2 of 4
    assert maybe_drop_lr(run, 0.0)
    run.step = 2
    train_step(run, task.batch(2, run.gen))
    assert run.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)  # schedule x drop


def test_task_defaults_memory_rows_and_schedule():
    from ds2cli.ntm.run import NTMOptions, _build_run

    # N-grams: the paper's memory, a tape-like write head to start and a 10x drop for the last quarter.
    ngrams = _build_run(NTMOptions(task="ngrams"))
    assert ngrams.model_cfg.memory_rows == 128 and ngrams.model_cfg.write_init == "sequential"
    cfg = ngrams.train_cfg
    assert (cfg.lr_schedule, cfg.lr_final, cfg.decay_at, cfg.rollback_above) == ("step", 0.1, 0.75, None)
    assert _build_run(NTMOptions(task="ngrams", memory_rows=32)).model_cfg.memory_rows == 32
    assert _build_run(NTMOptions(task="ngrams", write_init="free")).model_cfg.write_init == "free"
    assert _build_run(NTMOptions(task="associative-recall", controller="ff")).model_cfg.write_init == "sequential"
    assert _build_run(NTMOptions(task="priority-sort")).model_cfg.write_init == "sequential"
    assert _build_run(NTMOptions(task="repeat-copy")).model_cfg.write_init == "free"
    # The other tasks and the LSTM baseline keep the plain settings.
    copy = _build_run(NTMOptions(task="copy"))
    assert copy.model_cfg.write_init == "free" and copy.train_cfg.lr_schedule == "constant"
    assert _build_run(NTMOptions(task="ngrams", model="lstm")).train_cfg.lr_schedule == "constant"


def test_roll_back_restores_the_best_and_halves_the_lr():
    from ds2cli.ntm.fit import maybe_roll_back, snapshot

    run = tiny_run()
    run.train_cfg.rollback_above = 5.0
    best = snapshot(run)
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    for _ in range(3):
        train_step(run, run.task.batch(2, run.gen))
    assert not all(torch.equal(v, run.model.state_dict()[k]) for k, v in before.items())
    assert not maybe_roll_back(run, 14.0, 10.0, best)  # within 5 bits of the best: keep going
    assert maybe_roll_back(run, 16.0, 10.0, best)
    assert all(torch.equal(v, run.model.state_dict()[k]) for k, v in before.items())
    assert run.optimizer.state_dict()["state"] == {}  # the optimiser state of the snapshot, too
    assert run.lr_scale == 0.5 and run.rollbacks == [0]
    train_step(run, run.task.batch(2, run.gen))
    assert run.optimizer.param_groups[0]["lr"] == pytest.approx(5e-3)
    run.train_cfg.rollback_above = None
    assert not maybe_roll_back(run, 1e9, 10.0, best)


def test_training_rolls_back_a_collapse(tmp_path):
    # A rate this large wrecks the tiny model between validations; each wreck is undone and the
    # rate halved, and the weights kept at the end are never worse than the best validation.
    run = tiny_run()
    run.train_cfg.lr, run.train_cfg.rollback_above = 3.0, 0.5
    for group in run.optimizer.param_groups:
        group["lr"] = 3.0
    fit(run, 12, keep_best=True)
    assert run.rollbacks and run.lr_scale == 0.5 ** len(run.rollbacks)
    val = evaluate(run.model, run.task, None, run.train_cfg.val_sequences, seed=run.train_cfg.seed + 10_000)
    assert val.cost == pytest.approx(run.best["cost"], rel=1e-5)
