"""Starting from another model (--init-from), pooling manifests with weights, and checkpoint
averaging, with tiny real models trained for a few steps on real speech (ARCTIC)."""
import json

import pytest
import torch
from click.testing import CliRunner

from ds2cli.errors import DS2Error
from test_train import make_exp, small_recipe

torch.set_num_threads(1)


def _state(path):
    return torch.load(path, weights_only=True)["model_state"]


def _retokenize(exp, vocab_extra: str):
    """Give an experiment a larger alphabet (so its output layer differs in shape and meaning)."""
    from ds2cli.fileio import write_json
    from ds2cli.text import CharTokenizer

    tok = CharTokenizer.english().to_dict()
    tok["vocab"] = tok["vocab"] + list(vocab_extra)
    write_json(exp / "tokenizer.json", tok)


def test_init_from_loads_matching_layers_and_the_output_layer_only_for_the_same_alphabet(tmp_path, arctic_dir):
    from ds2cli.trainer import Trainer, train

    src = make_exp(tmp_path / "src", arctic_dir)
    train(small_recipe(epochs=1, max_steps=2), src)
    pretrained = _state(src / "checkpoints" / "last.pt")

    same = make_exp(tmp_path / "same", arctic_dir)
    trainer = Trainer(small_recipe(init_from=str(src / "checkpoints" / "last.pt")), same)
    loaded = trainer.model.state_dict()
    assert all(torch.equal(loaded[k], pretrained[k]) for k in pretrained)  # everything, BN stats too
    assert trainer.state["init_from"]["skipped"] == {} and trainer.state["init_from"]["same_alphabet"]

    other = make_exp(tmp_path / "other", arctic_dir)
    _retokenize(other, "0123456789")
    rec = small_recipe(epochs=1, max_steps=2, init_from=str(src / "checkpoints" / "last.pt"))
    trainer = Trainer(rec, other)
    loaded = trainer.model.state_dict()
    info = trainer.state["init_from"]
    assert set(info["skipped"]) == {"output.weight", "output.bias"}
    assert set(info["skipped"].values()) == {"output layer, different alphabet"}
    assert all(torch.equal(loaded[k], pretrained[k]) for k in info["loaded"])
    assert len(info["loaded"]) == len(pretrained) - 2
    report = trainer.run()  # and it trains from there
    assert report.steps == 2 and report.init_from["loaded"] == info["loaded"]
    saved = json.loads((other / "train_report.json").read_text())
    assert saved["init_from"]["skipped"]["output.weight"] == "output layer, different alphabet"


def test_init_from_skips_other_shapes_and_refuses_what_is_not_a_checkpoint(tmp_path, arctic_dir):
    from ds2cli.cli import main
    from ds2cli.trainer import Trainer, train

    src = make_exp(tmp_path / "src", arctic_dir)
    train(small_recipe(epochs=1, max_steps=1), src)
    ckpt = src / "checkpoints" / "last.pt"
    wider = small_recipe()
    wider["model"] = {**wider["model"], "rnn_layers": 2}
    dst = make_exp(tmp_path / "dst", arctic_dir)
    trainer = Trainer({**wider, "train": {**wider["train"], "init_from": str(ckpt)}}, dst)
    skipped = trainer.state["init_from"]["skipped"]
    assert skipped and all(k.startswith("rnns.1.") for k in skipped)  # the new second layer
    assert set(skipped.values()) == {"not in the checkpoint"}

    bigger = small_recipe()
    bigger["model"] = {**bigger["model"], "rnn_hidden": 48, "conv": [{"channels": 8, "kernel": [1, 3], "stride": [1, 2]}]}
    with pytest.raises(DS2Error, match="no layer of this checkpoint matches"):
        Trainer({**bigger, "train": {**bigger["train"], "init_from": str(ckpt)}}, make_exp(tmp_path / "b", arctic_dir))

    junk = tmp_path / "notes.pt"
    junk.write_text("not a model")
    recipe = tmp_path / "r.toml"
    recipe.write_text('name = "r"\n[data]\ncorpus = "arctic"\n[model]\nconv_type = "1d"\n'
                      'conv = [{channels = 16, kernel = [1, 5], stride = [1, 2]}]\nrnn_layers = 1\nrnn_hidden = 16\n'
                      '[train]\nepochs = 1\nnum_workers = 0\nthreads = 1\n')
    result = CliRunner().invoke(main, ["train", "--recipe", str(recipe), "--exp-dir", str(dst), "--no-resume",
                                       "--init-from", str(junk)])
    assert result.exit_code == 1 and "notes.pt: not a ds2cli checkpoint" in result.output
    assert "Traceback" not in result.output


def test_epoch_selection_follows_the_weights_and_is_replayable():
    from ds2cli.data import PoolSource, epoch_selection

    sources = [PoolSource(0, 10), PoolSource(10, 4, 0.5), PoolSource(14, 100, 2.0)]
    sel = epoch_selection(sources, 10, seed=0, epoch=0)
    assert sel == sorted(sel) and sel[:10] == list(range(10))
    assert sum(10 <= i < 14 for i in sel) == 5  # 0.5 x 10 from 4 rows: all once, one twice
    assert len({i for i in sel if 10 <= i < 14}) == 4
    pooled = [i for i in sel if i >= 14]
    assert len(pooled) == 20 and len(set(pooled)) == 20  # without repeats while rows last
    assert epoch_selection(sources, 10, 0, 0) == sel and epoch_selection(sources, 10, 0, 1) != sel
    assert epoch_selection(sources[:1], 10, 0, 3) == list(range(10))


def test_pooled_manifest_joins_every_epoch(tmp_path, arctic_dir):
    from ds2cli.manifest import read_manifest, write_manifest
    from ds2cli.trainer import Trainer

    own = make_exp(tmp_path / "own", arctic_dir, n_train=4, n_dev=2)
    other = make_exp(tmp_path / "other", arctic_dir, n_train=12, n_dev=0)
    rows = read_manifest(other / "manifests" / "train.jsonl")[4:]  # 8 rows the own set lacks
    rows.append({**rows[0], "id": "foreign", "text": "costs 5 dollars"})  # outside the alphabet
    pool_manifest = tmp_path / "pool.jsonl"
    write_manifest(pool_manifest, rows)
    recipe = small_recipe(epochs=2, pool=[{"manifest": str(pool_manifest), "weight": 1.5}])
    trainer = Trainer(recipe, own)
    assert trainer.dropped == {f"{pool_manifest}: characters outside the alphabet": 1}
    assert len(trainer.train_rows) == 4 + 8
    assert [(s.start, s.size, s.weight) for s in trainer.sources] == [(0, 4, None), (4, 8, 1.5)]

    class Recording(torch.utils.data.Dataset):  # the training loop's reads (num_workers = 0)
        def __init__(self, inner):
            self.inner, self.seen = inner, []

        def __len__(self):
            return len(self.inner)

        def __getitem__(self, key):
            self.seen.append((self.inner.rows[key[0]]["id"], key[1]))
            return self.inner[key]

    trainer.train_set = Recording(trainer.train_set)
    seen = trainer.train_set.seen
    report = trainer.run()
    assert report.pooled == {str(pool_manifest): 6} and report.train_utterances == 10
    for epoch in (0, 1):
        ids = [i for i, e in seen if e == epoch]
        assert len(ids) == 10 and sum(i in {r["id"] for r in rows} for i in ids) == 6
    with pytest.raises(Exception, match="pool entries"):
        Trainer(small_recipe(pool=[{"manifest": str(pool_manifest)}]), own)


def test_average_of_identical_checkpoints_is_itself_and_of_two_the_mean(tmp_path, arctic_dir):
    from ds2cli.average import average_checkpoints, average_states
    from ds2cli.cli import main
    from ds2cli.trainer import train

    exp = make_exp(tmp_path / "exp", arctic_dir)
    report = train(small_recipe(epochs=3, keep_best=1, keep_last_epochs=2), exp)
    ckpts = exp / "checkpoints"
    assert sorted(p.name for p in ckpts.glob("epoch-*.pt")) == sorted(
        {"epoch-1.pt", "epoch-2.pt", f"epoch-{report.history.index(min(report.history, key=lambda h: (h['dev_wer'], -h['epoch'])))}.pt"})
    one = ckpts / "epoch-2.pt"
    average_checkpoints([one, one, one], tmp_path / "same.pt")
    a, same = _state(one), _state(tmp_path / "same.pt")
    assert all(torch.equal(a[k], same[k]) for k in a)

    result = CliRunner().invoke(main, ["average", str(exp), "--last", "2", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert [p.split("/")[-1] for p in out["averaged"]] == ["epoch-1.pt", "epoch-2.pt"]
    b, mean = _state(ckpts / "epoch-1.pt"), _state(ckpts / "avg-last-2.pt")
    running = [k for k in a if "running_mean" in k or "running_var" in k]
    assert running  # batch-norm statistics are averaged too
    for k in a:
        if a[k].is_floating_point():
            assert torch.allclose(mean[k], (a[k] + b[k]) / 2, atol=1e-6), k
            assert not torch.equal(a[k], b[k]) or k.endswith("num_batches_tracked")
    assert average_states([{"n": torch.tensor(3)}, {"n": torch.tensor(5)}])["n"] == 5

    from ds2cli.inference import Recognizer

    Recognizer.from_checkpoint(ckpts / "avg-last-2.pt")  # a usable checkpoint
    result = CliRunner().invoke(main, ["average", str(exp), "--best", "5"])
    assert result.exit_code == 1 and "epoch checkpoint(s) kept, 5 asked for" in result.output
    result = CliRunner().invoke(main, ["average", str(exp)])
    assert result.exit_code == 2 and "--last K or --best K" in result.output
