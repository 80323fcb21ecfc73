"""Training a DS2 model from a recipe: CTC loss, SGD with Nesterov momentum (or AdamW) annealed per
epoch, SortaGrad batches of bounded audio, on-the-fly augmentation, mixed precision, synchronous
data-parallel training (DistributedDataParallel under torchrun), self-describing checkpoints that
resume exactly, greedy dev WER/CER every epoch.

Everything the run writes lives in the experiment directory:
    checkpoints/{last,best,epoch-E,step-N}.pt   metrics.jsonl   curves.png   train_report.json
and `<exp root>/LAST` names the most recently trained experiment (the default for decode)."""
from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ds2cli.checkpoint import build_checkpoint, load_checkpoint, save_checkpoint
from ds2cli.errors import DS2Error
from ds2cli.fileio import append_line, atomic_path, write_json, write_jsonl, write_text
from ds2cli.validation import check_fields

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class TrainConfig:
    """The [train] section of a recipe."""

    optimizer: str = "sgd"  # "sgd" (Nesterov momentum, as DS2) or "adamw"
    lr: float = 3e-4
    momentum: float = 0.99  # DS2: 0.99, Nesterov
    anneal: float = 1.2  # the learning rate is divided by this after every epoch (DS2: 1.2)
    warmup_steps: int = 0  # linear warm-up of the learning rate over the first optimiser steps
    weight_decay: float = 0.0
    grad_clip: float = 100.0  # max global gradient norm (0: no clipping); loss is per utterance
    max_batch_seconds: float = 60.0  # padded audio per batch and worker (utterances x longest)
    max_batch_size: int = 0  # utterances per batch and worker (0: no limit)
    accumulate: int = 1  # batches per optimiser step
    epochs: int = 10
    max_steps: int = 0  # stop after this many optimiser steps (0: run all epochs)
    sortagrad: bool = True  # DS2 §3.3: first epoch shortest first
    max_duration: float = 0.0  # drop training utterances longer than this (seconds; 0: keep all)
    precision: str = "fp32"  # fp32 | bf16 (CPU and GPU) | fp16 (GPU, with loss scaling)
    seed: int = 0
    device: str = "auto"  # auto (cuda if available), cpu, cuda, cuda:N
    threads: int = 0  # CPU threads per worker (0: cores / workers on this machine)
    sync_batch_norm: bool = True  # with several workers, batch-norm statistics over the global batch
    num_workers: int = 1  # DataLoader processes reading audio and computing features
    keep_last: int = 2  # step-N.pt checkpoints kept (last.pt is always the newest)
    keep_best: int = 1  # epoch-E.pt checkpoints kept, best dev WER first (best.pt is the best)
    keep_last_epochs: int = 0  # epoch-E.pt of the last N epochs kept too (for `ds2cli average`)
    save_every: int = 0  # optimiser steps between mid-epoch checkpoints (0: at epoch ends only)
    max_bad_batches: int = 20  # consecutive non-finite steps that stop the run
    log_every: int = 20  # optimiser steps between metrics.jsonl lines
    validate: bool = True  # greedy dev WER/CER after every epoch
    dev_max_utterances: int = 0  # validate on the first N dev utterances (0: all)
    noise_dir: str = ""  # noise recordings for [[augment]] type "noise" ("": generated noise)
    init_from: str = ""  # a checkpoint whose matching layers start the model (see warm_start.py)
    # more manifests pooled with the recipe's own training set, e.g.
    # [{ manifest = "exp/tiny/manifests/train.jsonl", weight = 1.0 }]: per epoch, weight x (own
    # training utterances) rows drawn from that manifest join the epoch
    pool: list = field(default_factory=list)

    RANGES = {"lr": "> 0", "momentum": "[0, 1)", "anneal": "> 0", "warmup_steps": ">= 0",
              "weight_decay": ">= 0", "grad_clip": ">= 0", "max_batch_seconds": "> 0", "max_batch_size": ">= 0",
              "accumulate": ">= 1", "epochs": ">= 1", "max_steps": ">= 0", "max_duration": ">= 0", "seed": ">= 0",
              "threads": ">= 0", "num_workers": ">= 0", "keep_last": ">= 0", "keep_best": ">= 0",
              "save_every": ">= 0", "max_bad_batches": ">= 1", "log_every": ">= 1", "dev_max_utterances": ">= 0"}

    def __post_init__(self):
        check_fields(self, self.RANGES)
        check_device(self.device)
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optimizer must be 'sgd' or 'adamw', not {self.optimizer!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        if self.max_batch_seconds <= 0 or self.accumulate < 1 or self.epochs < 1:
            raise ValueError("max_batch_seconds must be > 0, accumulate >= 1 and epochs >= 1")
        if self.anneal <= 0:
            raise ValueError("anneal must be > 0")
        for entry in self.pool:
            if not isinstance(entry, dict) or set(entry) != {"manifest", "weight"} \
                    or not isinstance(entry["manifest"], str) or not isinstance(entry["weight"], (int, float)) \
                    or entry["weight"] <= 0:
                raise ValueError(f"pool entries are {{ manifest = \"PATH\", weight = W > 0 }}, not {entry!r}")


@dataclass
class TrainReport:
    exp_dir: str
    epochs: int
    steps: int
    best_checkpoint: str | None
    best_dev_wer: float | None
    best_dev_cer: float | None
    last_loss: float | None
    bad_batches: int
    dropped_utterances: dict[str, int]  # reason -> rows left out before training
    skipped_utterances: int  # rows whose audio could not be read during training (each counted once)
    skipped_examples: list[str]  # the first messages, file and problem, of the rows left out
    train_utterances: int
    world_size: int
    seconds: float
    audio_seconds_per_second: float
    history: list[dict] = field(default_factory=list)  # one row per epoch
    init_from: dict | None = None  # what --init-from loaded and skipped (warm_start.InitReport)
    pooled: dict[str, int] = field(default_factory=dict)  # pooled manifest -> rows used per epoch

    def summary(self) -> str:
        dev = (f"best dev WER {self.best_dev_wer:.2%} CER {self.best_dev_cer:.2%}"
               if self.best_dev_wer is not None else "no validation")
        loss = f"{self.last_loss:.3f}" if self.last_loss is not None else "n/a"
        return (f"trained {self.epochs} epoch(s), {self.steps} steps in {self.seconds:.0f} s "
                f"({self.audio_seconds_per_second:.1f} audio s/s, {self.world_size} worker(s)); "
                f"loss {loss}; {dev}; bad batches {self.bad_batches}{self.skipped_note()} -> {self.best_checkpoint}")

    def skipped_note(self) -> str:
        left_out = sum(self.dropped_utterances.values()) + self.skipped_utterances
        return f"; {left_out} utterance(s) left out (see train_report.json)" if left_out else ""


# ---------------------------------------------------------------- small pure helpers

def learning_rate(cfg: TrainConfig, epoch: int, step: int) -> float:
    """DS2 schedule: lr / anneal^epoch, times a linear warm-up over the first steps."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    return cfg.lr / cfg.anneal ** epoch * warm


def make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0,
                               weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def ctc_loss_sum(model, batch, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed CTC loss over the batch's utterances (infinite when a transcript cannot be aligned),
    and the output lengths. Log-softmax and loss in float32 whatever the autocast precision."""
    logits, out_lengths = model(batch.feats.to(device, non_blocking=True),
                                batch.lengths.to(device, non_blocking=True))
    log_probs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)  # (T', B, V)
    loss = F.ctc_loss(log_probs, batch.targets.to(device), out_lengths, batch.target_lengths.to(device),
                      blank=0, reduction="sum", zero_infinity=False)
    return loss, out_lengths


DEVICE_NAMES = "auto, cpu, cuda or cuda:N"


def check_device(name) -> None:
    """A ValueError unless `name` is a device this program knows how to ask for."""
    import re

    if not isinstance(name, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", name):
        raise ValueError(f"device must be {DEVICE_NAMES}, not {name!r}")


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The torch device for `name`; a DS2Error for a name not known or a GPU that is not there."""
    try:
        check_device(name)
    except ValueError as err:
        raise DS2Error(f"--device: {err}") from None
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and torch.cuda.is_available():
        name = f"cuda:{local_rank}"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DS2Error("device cuda requested but no GPU is available (use --device cpu)")
    return torch.device(name)


def autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=PRECISIONS[precision])


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self):
        if self.world_size > 1:
            torch.distributed.barrier()


def init_distributed(device_name: str) -> Dist:
    """Join the process group torchrun describes in the environment (nccl on GPUs, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    dist = Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")),
                int(os.environ.get("LOCAL_WORLD_SIZE", world)))
    if not torch.distributed.is_initialized():
        gpu = resolve_device(device_name, dist.local_rank).type == "cuda"
        if gpu:
            torch.cuda.set_device(dist.local_rank)
        torch.distributed.init_process_group("nccl" if gpu else "gloo")
    return dist


# ---------------------------------------------------------------- the run

class Trainer:
    """One training run. `run()` is the loop; everything else is a step of it."""

    def __init__(self, recipe: dict, exp_dir, *, data_dir: str | None = None, resume: bool = True,
                 longest_first: bool = False, quiet: bool = True, log: Callable[[str], None] | None = None):
        from ds2cli.stages import ensure_prepared
        from ds2cli.features import FeatureConfig
        from ds2cli.model import ModelConfig
        from ds2cli.recipe import section

        self.recipe, self.exp_dir = recipe, Path(exp_dir)
        self.cfg: TrainConfig = section(recipe, "train", TrainConfig)
        self.feature_config = section(recipe, "features", FeatureConfig)
        model_section = {"n_bins": self.feature_config.n_bins, **recipe.get("model", {})}
        self.model_config = section({**recipe, "model": model_section}, "model", ModelConfig)
        self.quiet, self.longest_first = quiet, longest_first
        self.dist = init_distributed(self.cfg.device)
        self.log = (log or (lambda msg: None)) if self.dist.main else (lambda msg: None)
        # cheap checks first: a wrong device or a missing file must not wait for a corpus preparation
        self.device = resolve_device(self.cfg.device, self.dist.local_rank)
        if self.cfg.precision == "fp16" and self.device.type != "cuda":
            raise DS2Error("fp16 training needs a GPU; use --precision bf16 on the CPU")
        self._check_inputs()
        if self.dist.main:
            ensure_prepared(recipe, self.exp_dir, data_dir=data_dir, quiet=quiet, log=self.log)
        self.dist.barrier()
        if self.device.type == "cpu":
            cores = os.cpu_count() or 1
            torch.set_num_threads(self.cfg.threads or max(1, cores // self.dist.local_world_size))
        self.ckpt_dir = self.exp_dir / "checkpoints"
        self._load_data()
        self._build_model()
        self.state = {"epoch": 0, "batch": 0, "step": 0, "bad_total": 0, "bad_in_row": 0,
                      "best_wer": None, "best_cer": None, "best_epoch": None, "history": [],
                      "audio_seconds": 0.0, "train_seconds": 0.0, "epoch_kept": [], "skipped": {}}
        self.resumed = resume and (self.ckpt_dir / "last.pt").is_file()
        if self.resumed:
            self._restore(self.ckpt_dir / "last.pt")
            if self.cfg.init_from:
                self.log(f"resuming {self.ckpt_dir / 'last.pt'}: train.init_from is not used again")
        elif self.cfg.init_from:
            from ds2cli.warm_start import init_from_checkpoint

            report = init_from_checkpoint(self.model, self.cfg.init_from, self.tokenizer)
            self.state["init_from"] = report.to_dict()
            self.log(report.summary())

    # -- set-up
    def _check_inputs(self):
        """The recipe's other files and its [[augment]] tables, before any preparation."""
        from ds2cli.augment import AugmentConfig

        noise = self.cfg.noise_dir
        if noise and not Path(noise).exists():
            raise DS2Error(f"{noise}: noise folder not found (train.noise_dir)")
        if self.cfg.init_from and not Path(self.cfg.init_from).is_file():
            raise DS2Error(f"{self.cfg.init_from}: no such checkpoint (train.init_from / --init-from)")
        for entry in self.cfg.pool:
            if not Path(entry["manifest"]).is_file():
                raise DS2Error(f"{entry['manifest']}: no such manifest (train.pool)")
        if self.recipe.get("augment"):
            AugmentConfig.from_list(self.recipe["augment"],
                                    source=f"{self.recipe.get('_path', 'recipe')} [[augment]]")

    def _load_data(self):
        from ds2cli.data import PoolSource, SpeechDataset, drop_impossible
        from ds2cli.features import FeatureStats
        from ds2cli.model import ConvFrontEnd
        from ds2cli.text import tokenizer_from_dict

        exp = self.exp_dir
        self.tokenizer = tokenizer_from_dict(json.loads((exp / "tokenizer.json").read_text()))
        self.feature_stats = FeatureStats.from_dict(json.loads((exp / "feature_stats.json").read_text()))
        self.dropped: dict[str, int] = {}
        self.examples: list[str] = []
        train_path = exp / "manifests" / "train.jsonl"
        rows = self._usable_rows(train_path)
        dev_path = exp / "manifests" / "dev.jsonl"
        dev_rows = self._usable_rows(dev_path, "dev ") if dev_path.is_file() and self.cfg.validate else []
        if self.cfg.dev_max_utterances:
            dev_rows = dev_rows[: self.cfg.dev_max_utterances]
        if self.cfg.max_duration:
            long = [r for r in rows if r["duration"] > self.cfg.max_duration]
            rows = [r for r in rows if r["duration"] <= self.cfg.max_duration]
            if long:
                self.dropped[f"longer than {self.cfg.max_duration:g} s"] = len(long)
        frontend = ConvFrontEnd(self.model_config)
        rows, impossible = drop_impossible(rows, self.tokenizer, frontend.output_lengths,
                                           self.feature_config.hop_ms / 1000)
        if impossible:
            self.dropped["transcript too long for its audio"] = len(impossible)
        if not rows:
            raise DS2Error(f"{train_path}: no trainable utterances "
                           f"({', '.join(f'{k}: {v}' for k, v in self.dropped.items()) or 'empty'})")
        self.sources = [PoolSource(0, len(rows))]
        self.pooled: dict[str, int] = {}
        own = len(rows)
        for entry in self.cfg.pool:
            extra = self._pool_rows(entry["manifest"], frontend)
            self.sources.append(PoolSource(len(rows), len(extra), float(entry["weight"])))
            self.pooled[entry["manifest"]] = int(round(entry["weight"] * own)) if extra else 0
            rows = rows + extra
        self.train_rows, self.dev_rows = rows, dev_rows
        self.pipeline = self._augmentation()
        self.train_set = SpeechDataset(rows, self.tokenizer, self.feature_config, self.feature_stats,
                                       self.pipeline, self.cfg.seed)
        self.dev_set = SpeechDataset(dev_rows, self.tokenizer, self.feature_config, self.feature_stats)

    def _pool_rows(self, manifest: str, frontend) -> list[dict]:
        """The usable rows of a pooled manifest: those of the recipe's alphabet that CTC can align
        (the others are counted in `dropped`)."""
        from ds2cli.data import drop_impossible

        rows = self._usable_rows(Path(manifest), f"{manifest}: ")
        if self.cfg.max_duration:
            rows = [r for r in rows if r["duration"] <= self.cfg.max_duration]
        rows, impossible = drop_impossible(rows, self.tokenizer, frontend.output_lengths,
                                           self.feature_config.hop_ms / 1000)
        if impossible:
            self.dropped[f"{manifest}: transcript too long for its audio"] = len(impossible)
        if not rows:
            raise DS2Error(f"{manifest}: no usable rows to pool (train.pool)")
        return rows

    def _usable_rows(self, path: Path, split: str = "") -> list[dict]:
        """The manifest's rows without those one bad field or an unknown character makes unusable
        (counted in self.dropped, the first messages kept in self.examples)."""
        from ds2cli.manifest import read_manifest

        bad: list[str] = []
        rows = read_manifest(path, skipped=bad)
        keep = []
        for row in rows:
            unknown = self.tokenizer.unknown(row["text"])
            if unknown:
                bad.append(f"{path}: {row['id']}: character(s) {''.join(unknown)!r} not in the alphabet")
            else:
                keep.append(row)
        for message in bad:
            reason = f"{split}bad manifest row" if "not in the alphabet" not in message else \
                f"{split}characters outside the alphabet"
            self.dropped[reason] = self.dropped.get(reason, 0) + 1
            self._example(message)
        return keep

    def _example(self, message: str):
        if len(self.examples) < 20:
            self.examples.append(message)
        if len(self.examples) <= 5:
            self.log(f"skipped: {message}")

    def _note_skipped(self, batch):
        """Remember (once per id) the rows a DataLoader worker could not read."""
        for utt, reason in batch.skipped:
            if utt not in self.state["skipped"]:
                self.state["skipped"][utt] = reason
                self._example(reason)

    def _augmentation(self):
        specs = self.recipe.get("augment", [])
        if not specs:
            return None
        from ds2cli.augment import AugmentConfig, build_pipeline

        config = AugmentConfig.from_list(specs, source=f"{self.recipe.get('_path', 'recipe')} [[augment]]")
        noise = self.cfg.noise_dir or None
        if noise and not Path(noise).exists():
            raise DS2Error(f"{noise}: noise folder not found (train.noise_dir)")
        return build_pipeline(config, self.feature_config.sample_rate, noise, total_epochs=self.cfg.epochs)

    def _build_model(self):
        from ds2cli.model import DeepSpeech2, sync_batch_norm

        torch.manual_seed(self.cfg.seed)
        self.model = DeepSpeech2(self.model_config, len(self.tokenizer)).to(self.device)
        self.net = self.model
        if self.dist.world_size > 1:
            # per-worker statistics would make the result depend on the number of workers
            sync_batch_norm(self.model, self.cfg.sync_batch_norm)
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.optimizer = make_optimizer(self.cfg, self.model.parameters())
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.cfg.precision == "fp16")

    def _restore(self, path: Path):
        ckpt = load_checkpoint(path, map_location=self.device)
        ts = ckpt.get("train_state") or {}
        fresh = "use --no-resume or another experiment folder"
        if ckpt.get("model_config") != self.model_config.to_dict():
            raise DS2Error(f"{path}: its model config differs from the recipe's; {fresh}")
        if _vocab(ckpt) != self.tokenizer.vocab:
            raise DS2Error(f"{path}: its alphabet differs from {self.exp_dir / 'tokenizer.json'}; {fresh}")
        if not isinstance(ts, dict) or not {"optimizer", "rng", "position"} <= set(ts):
            raise DS2Error(f"{path}: holds no training state to resume (an averaged or exported model?); "
                           f"{fresh}, or start from its weights with --init-from")
        try:
            self.model.load_state_dict(ckpt["model_state"])
            self.optimizer.load_state_dict(ts["optimizer"])
            if ts.get("scaler"):
                self.scaler.load_state_dict(ts["scaler"])
            torch.set_rng_state(ts["rng"]["torch"].cpu())
        except (KeyError, TypeError, ValueError, RuntimeError) as err:  # e.g. another train.optimizer
            raise DS2Error(f"{path}: its training state does not fit the recipe ({type(err).__name__}: "
                           f"{str(err).splitlines()[0][:120] if str(err) else 'mismatch'}); {fresh}") from None
        self.state.update(ts["position"])
        self.log(f"resumed from {path}: epoch {self.state['epoch']}, batch {self.state['batch']}, "
                 f"step {self.state['step']}")

    # -- checkpoints
    def _checkpoint(self, metrics: dict | None = None) -> dict:
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        train_state = {"optimizer": self.optimizer.state_dict(),
                       "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                       "rng": rng, "position": dict(self.state), "config": asdict(self.cfg),
                       "world_size": self.dist.world_size}
        return build_checkpoint(self.model, self.tokenizer, self.feature_config, self.feature_stats,
                                train_state=train_state, recipe=_plain(self.recipe), metrics=metrics)

    def save(self, kind: str, metrics: dict | None = None):
        """Write last.pt (atomically), then hard-link it as step-N.pt or epoch-E.pt and prune."""
        if not self.dist.main:
            return
        last = self.ckpt_dir / "last.pt"
        save_checkpoint(last, self._checkpoint(metrics))
        if kind == "step":
            _link(last, self.ckpt_dir / f"step-{self.state['step']}.pt")
            steps = sorted(self.ckpt_dir.glob("step-*.pt"), key=lambda p: int(p.stem.split("-")[1]))
            for old in steps[: max(0, len(steps) - self.cfg.keep_last)]:
                old.unlink(missing_ok=True)

    def save_epoch(self, epoch: int, wer: float | None, metrics: dict):
        if not self.dist.main:
            return
        self.save("epoch", metrics)
        path = self.ckpt_dir / f"epoch-{epoch}.pt"
        _link(self.ckpt_dir / "last.pt", path)
        kept = [k for k in self.state["epoch_kept"] if k[0] != epoch] + [(epoch, wer)]
        # lower WER first; without validation the newest epochs are "best"
        kept.sort(key=lambda k: (k[1] if k[1] is not None else 0.0, -k[0]))
        recent = set(range(epoch - self.cfg.keep_last_epochs + 1, epoch + 1))
        for e, _ in kept[self.cfg.keep_best:]:
            if (e != epoch or self.cfg.keep_best == 0) and e not in recent:
                (self.ckpt_dir / f"epoch-{e}.pt").unlink(missing_ok=True)
        self.state["epoch_kept"] = [k for i, k in enumerate(kept) if i < self.cfg.keep_best or k[0] in recent]
        if kept[0][0] == epoch:
            _link(path if path.exists() else self.ckpt_dir / "last.pt", self.ckpt_dir / "best.pt")

    # -- one optimiser step over `accumulate` batches
    def train_step(self, batches: list, n_global: int, epoch: int) -> tuple[torch.Tensor, bool]:
        """Forward/backward over the batches, then clip and step. Returns the mean loss per
        utterance (a tensor, summed over ranks later) and whether the step was taken (False when
        the loss or gradient is not finite: the update is skipped)."""
        cfg = self.cfg
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(cfg, epoch, self.state["step"])
        self.net.train()
        total = torch.zeros((), device=self.device)
        # each rank's loss is scaled so DDP's gradient average equals the global per-utterance mean
        scale = self.dist.world_size / max(1, n_global)
        for i, batch in enumerate(batches):
            sync = i == len(batches) - 1 or self.dist.world_size == 1
            ctx = contextlib.nullcontext() if sync else self.net.no_sync()
            with ctx:
                with autocast(self.device, cfg.precision):
                    loss, _ = ctc_loss_sum(self.net, batch, self.device)
                self.scaler.scale(loss * scale).backward()
            total += loss.detach() * scale
        self.scaler.unscale_(self.optimizer)
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        norm = (torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip) if cfg.grad_clip > 0
                else torch.nn.utils.get_total_norm(grads))
        # the all-reduced gradient is identical on every rank, so every rank decides alike
        finite = bool(torch.isfinite(norm))
        if self.scaler.is_enabled():
            self.scaler.step(self.optimizer)  # skips a non-finite fp16 step and lowers the scale
            self.scaler.update()
            # an fp16 gradient overflow is routine loss-scale calibration, not a bad batch
            finite = finite or self._global_finite(total)
        elif finite:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total, finite

    def _global_finite(self, loss: torch.Tensor) -> bool:
        flag = torch.isfinite(loss).float()
        if self.dist.world_size > 1:
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
        return bool(flag)

    # -- validation
    @torch.no_grad()
    def validate(self) -> dict:
        """Greedy WER/CER on the dev split (main process)."""
        from ds2cli.ctc import greedy_ids
        from ds2cli.data import BucketBatchSampler, collate
        from ds2cli.metrics import score_pairs

        self.model.eval()
        sampler = BucketBatchSampler([r["duration"] for r in self.dev_rows],
                                     self.cfg.max_batch_seconds * 2, sortagrad=True)
        loader = torch.utils.data.DataLoader(self.dev_set, batch_sampler=sampler, collate_fn=collate,
                                             num_workers=self.cfg.num_workers)
        pairs = []
        for batch in loader:
            self._note_skipped(batch)
            if not len(batch):
                continue
            with autocast(self.device, self.cfg.precision):
                logits, out_lengths = self.model(batch.feats.to(self.device), batch.lengths.to(self.device))
            log_probs = F.log_softmax(logits.float(), -1).cpu()
            out_lengths = out_lengths.cpu()
            for j, utt in enumerate(batch.ids):
                hyp = self.tokenizer.decode(greedy_ids(log_probs[j, : out_lengths[j]]))
                pairs.append((utt, batch.texts[j], hyp))
        score = score_pairs(pairs, self.tokenizer.language)
        return {"dev_wer": score.wer.rate, "dev_cer": score.cer.rate, "dev_utterances": len(pairs),
                "examples": [list(p) for p in pairs[:3]]}

    # -- the loop
    def run(self) -> TrainReport:
        from ds2cli.data import BucketBatchSampler, SelectedBatches, collate, epoch_selection
        from ds2cli.progress import progress

        cfg, st, dist = self.cfg, self.state, self.dist
        metrics_path = self.exp_dir / "metrics.jsonl"
        if dist.main:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            self.metrics = _read_metrics(metrics_path, upto_step=st["step"])
            _write_last(self.exp_dir, self.recipe)
        all_durations = [r["duration"] for r in self.train_rows]
        run_start, stop = time.time(), False
        loss_value = None
        while st["epoch"] < cfg.epochs and not stop:
            epoch = st["epoch"]
            selection = epoch_selection(self.sources, self.sources[0].size, cfg.seed, epoch)
            durations = [all_durations[i] for i in selection]
            sampler = BucketBatchSampler(
                durations, cfg.max_batch_seconds, max_batch_size=cfg.max_batch_size, seed=cfg.seed,
                epoch=epoch, sortagrad=cfg.sortagrad, rank=dist.rank, world_size=dist.world_size,
                start=st["batch"], longest_first=self.longest_first and not self.resumed and epoch == 0)
            sizes = sampler.global_batch_sizes()
            loader = torch.utils.data.DataLoader(
                self.train_set, batch_sampler=SelectedBatches(sampler, selection), collate_fn=collate,
                num_workers=cfg.num_workers,
                pin_memory=self.device.type == "cuda", prefetch_factor=4 if cfg.num_workers else None)
            bar = progress(total=len(sampler), desc=f"epoch {epoch + 1}/{cfg.epochs}",
                           quiet=self.quiet or not dist.main, unit="batch")
            t0, utts, audio, pending, seen, consumed = time.time(), 0, 0.0, [], 0, 0
            for batch in loader:
                self._note_skipped(batch)
                seen += 1
                consumed += 1
                if len(batch):
                    pending.append(batch)
                if consumed < cfg.accumulate and seen < len(sizes):
                    continue
                st["batch"] += consumed
                bar.update(consumed)
                if not pending:  # every utterance of these batches was unreadable
                    consumed = 0
                    continue
                n_global = (sum(sizes[seen - consumed: seen]) if dist.world_size > 1
                            else sum(len(b) for b in pending))
                consumed = 0
                loss, ok = self.train_step(pending, n_global, epoch)
                batch_audio = sum(durations_of(pending)) * dist.world_size  # approx. global audio
                utts += n_global
                audio += batch_audio
                st["step"] += 1
                st["audio_seconds"] += batch_audio
                pending = []
                if ok:
                    st["bad_in_row"] = 0
                else:
                    st["bad_total"] += 1
                    st["bad_in_row"] += 1
                    self.log(f"step {st['step']}: non-finite loss or gradient, batch skipped "
                             f"({st['bad_in_row']} in a row, {st['bad_total']} in all)")
                    if st["bad_in_row"] >= cfg.max_bad_batches:
                        raise DS2Error(f"{self.exp_dir}: {st['bad_in_row']} batches in a row had a non-finite "
                                       f"loss or gradient; stopping (lower train.lr, check the data, or raise "
                                       f"train.max_bad_batches)")
                if st["step"] % cfg.log_every == 0 or (cfg.max_steps and st["step"] >= cfg.max_steps):
                    loss_value = self._global_mean(loss) if ok else float("nan")
                    elapsed = time.time() - t0
                    row = {"step": st["step"], "epoch": epoch, "batch": st["batch"], "loss": loss_value,
                           "lr": self.optimizer.param_groups[0]["lr"], "utt_per_s": utts / elapsed,
                           "audio_s_per_s": audio / elapsed, "bad_batches": st["bad_total"], "time": time.time()}
                    self._metric(row)
                    bar.set_postfix(loss=f"{loss_value:.3f}", utt_s=f"{utts / elapsed:.1f}",
                                    audio_s=f"{audio / elapsed:.1f}")
                if cfg.max_steps and st["step"] >= cfg.max_steps:
                    stop = True
                    break
                if cfg.save_every and st["step"] % cfg.save_every == 0 and st["batch"] < len(sizes) + sampler.start:
                    self.save("step")
            bar.close()
            if sizes and not utts and sampler.start == 0 and not stop:  # a whole epoch unreadable
                raise DS2Error(f"{self.exp_dir / 'manifests' / 'train.jsonl'}: none of its "
                               f"{len(self.train_rows)} utterances could be read "
                               f"(first: {next(iter(st['skipped'].values()))})")
            epoch_seconds = time.time() - t0
            st["train_seconds"] += epoch_seconds
            if stop and st["batch"] < len(sizes) + sampler.start:
                self.save("step")
                break
            self._end_epoch(epoch, epoch_seconds, utts, audio, loss_value)
        return self._finish(run_start)

    def _end_epoch(self, epoch, seconds, utts, audio, loss_value):
        st, dist = self.state, self.dist
        row = {"epoch": epoch, "step": st["step"], "epoch_seconds": seconds,
               "utt_per_s": utts / max(seconds, 1e-9), "audio_s_per_s": audio / max(seconds, 1e-9),
               "train_loss": loss_value, "lr": self.optimizer.param_groups[0]["lr"]}
        if dist.main and self.dev_rows:
            row.update(self.validate())
        dist.barrier()
        st["epoch"], st["batch"] = epoch + 1, 0
        wer = row.get("dev_wer")
        if wer is not None and (st["best_wer"] is None or wer < st["best_wer"]):
            st["best_wer"], st["best_cer"], st["best_epoch"] = wer, row["dev_cer"], epoch
        st["history"] = st["history"] + [{k: v for k, v in row.items() if k != "examples"}]
        self._metric({"type": "epoch", **row, "time": time.time()})
        self.save_epoch(epoch, wer, {k: v for k, v in row.items() if k != "examples"})
        dev = f", dev WER {wer:.2%} CER {row['dev_cer']:.2%}" if wer is not None else ""
        self.log(f"epoch {epoch + 1}: loss {loss_value if loss_value is None else round(loss_value, 3)}, "
                 f"{row['audio_s_per_s']:.1f} audio s/s{dev}")

    def _finish(self, run_start) -> TrainReport:
        st = self.state
        best = self.ckpt_dir / "best.pt"
        report = TrainReport(
            exp_dir=str(self.exp_dir), epochs=st["epoch"], steps=st["step"],
            best_checkpoint=str(best if best.exists() else self.ckpt_dir / "last.pt"),
            best_dev_wer=st["best_wer"], best_dev_cer=st["best_cer"],
            last_loss=next((m.get("loss") for m in reversed(getattr(self, "metrics", [])) if "loss" in m), None),
            bad_batches=st["bad_total"], dropped_utterances=self.dropped,
            skipped_utterances=len(st["skipped"]), skipped_examples=self.examples,
            train_utterances=self.sources[0].size + sum(self.pooled.values()), world_size=self.dist.world_size,
            seconds=round(time.time() - run_start, 2),
            audio_seconds_per_second=st["audio_seconds"] / max(st["train_seconds"], 1e-9),
            history=st["history"], init_from=st.get("init_from"), pooled=self.pooled)
        if self.dist.main:
            write_json(self.exp_dir / "train_report.json", asdict(report))
            with contextlib.suppress(Exception):  # a plot is a convenience, never a failure
                plot_curves(self.metrics, self.exp_dir / "curves.png")
        self.dist.barrier()
        return report

    def _global_mean(self, loss: torch.Tensor) -> float:
        if self.dist.world_size > 1:
            loss = loss.clone()
            torch.distributed.all_reduce(loss)
            loss = loss / self.dist.world_size
        return float(loss)

    def _metric(self, row: dict):
        if self.dist.main:
            self.metrics.append(row)
            append_line(self.exp_dir / "metrics.jsonl", json.dumps(row))


def durations_of(batches) -> list[float]:
    return [d for b in batches for d in b.durations]


def train(recipe: dict, exp_dir, *, data_dir: str | None = None, resume: bool = True,
          longest_first: bool = False, quiet: bool = True,
          log: Callable[[str], None] | None = None) -> TrainReport:
    """Train (or resume training) the recipe into `exp_dir`, preparing its data first if needed.
    One run at a time per experiment: the main process holds its lock (ds2cli.lock)."""
    from ds2cli.lock import folder_lock

    main = int(os.environ.get("RANK", "0")) == 0
    with folder_lock(exp_dir, "train") if main else contextlib.nullcontext():
        trainer = Trainer(recipe, exp_dir, data_dir=data_dir, resume=resume, longest_first=longest_first,
                          quiet=quiet, log=log)
        return trainer.run()


# ---------------------------------------------------------------- files

def _link(src: Path, dst: Path):
    """Make dst another name for src's current contents (a hard link; a copy where links fail)."""
    import shutil

    with atomic_path(dst) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


def _vocab(ckpt: dict) -> list | None:
    """The output units a checkpoint was trained for (None if it does not say)."""
    from ds2cli.text import tokenizer_from_dict

    try:
        return tokenizer_from_dict(ckpt["tokenizer"]).vocab
    except Exception:  # a damaged entry: not the same alphabet either
        return None


def _plain(value):
    """Recipe values as plain Python (TOML dates become strings) so checkpoints load weights-only."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _read_metrics(path: Path, upto_step: int) -> list[dict]:
    """The metrics a resumed run has already written, without rows past the checkpoint (they will be redone)."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):  # a line a full disk or a kill cut short
            row = json.loads(line)
            if isinstance(row, dict) and row.get("step", 0) <= upto_step:
                rows.append(row)
    write_jsonl(path, rows)
    return rows


def _write_last(exp_dir: Path, recipe: dict):
    write_text(exp_dir.parent / "LAST", f"{recipe.get('name', exp_dir.name)}\n{exp_dir.resolve()}\n")


def plot_curves(metrics: list[dict], path: Path):
    """curves.png: training loss per step and dev WER/CER per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [m for m in metrics if "loss" in m and m.get("type") != "epoch"]
    epochs = [m for m in metrics if m.get("type") == "epoch" and m.get("dev_wer") is not None]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot([m["step"] for m in steps], [m["loss"] for m in steps])
    a.set(xlabel="step", ylabel="CTC loss per utterance", title="training loss", yscale="log")
    if epochs:
        b.plot([m["epoch"] + 1 for m in epochs], [100 * m["dev_wer"] for m in epochs], "o-", label="WER")
        b.plot([m["epoch"] + 1 for m in epochs], [100 * m["dev_cer"] for m in epochs], "s-", label="CER")
        b.legend()
    b.set(xlabel="epoch", ylabel="%", title="dev (greedy)")
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(fig)


def read_last(exp_root="exp") -> Path | None:
    """The experiment directory `ds2cli train` wrote last under `exp_root` (None if none)."""
    path = Path(exp_root) / "LAST"
    if not path.is_file():
        return None
    lines = path.read_text().splitlines()
    return Path(lines[1]) if len(lines) > 1 else Path(exp_root) / lines[0]


def checkpoint_metrics(path) -> dict:
    return load_checkpoint(path).get("metrics", {})
