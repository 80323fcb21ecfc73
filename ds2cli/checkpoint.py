"""Self-describing checkpoints: everything needed to rebuild the recogniser (model config and
weights, tokenizer, feature config and statistics) plus, for training checkpoints, the state to
resume exactly. Only tensors and plain Python values are stored, so loading never unpickles code
(`torch.load(weights_only=True)`)."""
from __future__ import annotations

from pathlib import Path

import torch

from ds2cli.errors import DS2Error
from ds2cli.features import FeatureConfig, FeatureStats
from ds2cli.fileio import torch_save
from ds2cli.model import DeepSpeech2, ModelConfig
from ds2cli.text import tokenizer_from_dict

FORMAT = "ds2cli-checkpoint"
VERSION = 1


def build_checkpoint(model: DeepSpeech2, tokenizer, feature_config: FeatureConfig,
                     feature_stats: FeatureStats, *, train_state: dict | None = None,
                     recipe: dict | None = None, metrics: dict | None = None) -> dict:
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    return {
        "format": FORMAT, "version": VERSION,
        "model_config": model.config.to_dict(), "tokenizer": tokenizer.to_dict(),
        "feature_config": feature_config.to_dict(), "feature_stats": feature_stats.to_dict(),
        "model_state": model.state_dict(), "train_state": train_state, "recipe": recipe or {},
        "metrics": metrics or {},
    }


def save_checkpoint(path, checkpoint: dict) -> None:
    torch_save(checkpoint, path)


def load_checkpoint(path, map_location="cpu") -> dict:
    """Load and validate a ds2cli checkpoint; raises DS2Error naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise DS2Error(f"{path}: no such checkpoint")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for a bad file; all mean the same here
        raise DS2Error(f"{path}: not a ds2cli checkpoint ({type(err).__name__}: "
                       f"{str(err).splitlines()[0][:120] if str(err) else 'unreadable'})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise DS2Error(f"{path}: not a ds2cli checkpoint (no '{FORMAT}' format marker)")
    if ckpt.get("version", 0) > VERSION:
        raise DS2Error(f"{path}: checkpoint version {ckpt['version']} is newer than this ds2cli supports")
    return ckpt


def model_from_checkpoint(ckpt: dict) -> DeepSpeech2:
    """Rebuild the network in eval mode."""
    tokenizer = tokenizer_from_dict(ckpt["tokenizer"])
    model = DeepSpeech2(ModelConfig.from_dict(ckpt["model_config"]), len(tokenizer))
    model.load_state_dict(ckpt["model_state"])
    return model.eval()
