"""Starting a model from another one's weights (`ds2cli train --init-from CKPT`): a model pretrained
where speech is unlimited (the synthetic corpus) fine-tuned on a little real speech.

Every tensor of the checkpoint whose name and shape match the new model's is loaded, batch-norm
running statistics included. The output layer maps to output units, so it is loaded only when both
models have the same alphabet (the same units in the same order); otherwise it keeps its fresh
initialisation. Everything else (the optimiser, the schedule, the feature statistics of the new
corpus) starts afresh."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from ds2cli.checkpoint import load_checkpoint
from ds2cli.errors import DS2Error

OUTPUT_PREFIX = "output."  # DeepSpeech2.output: the layer that maps to output units


@dataclass
class InitReport:
    checkpoint: str
    loaded: list[str] = field(default_factory=list)  # tensor names copied
    skipped: dict[str, str] = field(default_factory=dict)  # tensor name -> why not
    same_alphabet: bool = False

    def summary(self) -> str:
        parts = [f"initialised {len(self.loaded)} of {len(self.loaded) + len(self.skipped)} tensors "
                 f"from {self.checkpoint}"]
        if self.skipped:
            reasons: dict[str, int] = {}
            for why in self.skipped.values():
                reasons[why] = reasons.get(why, 0) + 1
            parts.append("skipped " + ", ".join(f"{n} ({why})" for why, n in reasons.items()))
        return "; ".join(parts)

    def to_dict(self) -> dict:
        return asdict(self)


def init_from_checkpoint(model: torch.nn.Module, path, tokenizer) -> InitReport:
    """Copy the matching tensors of checkpoint `path` into `model` (in place) and say which.
    Raises DS2Error for a file that is not a ds2cli checkpoint or shares no tensor with `model`."""
    ckpt = load_checkpoint(path)
    source: dict[str, torch.Tensor] = ckpt["model_state"]
    same_alphabet = ckpt["tokenizer"].get("vocab") == tokenizer.to_dict().get("vocab")
    report = InitReport(str(path), same_alphabet=same_alphabet)
    target = model.state_dict()
    update = {}
    for name, tensor in target.items():
        theirs = source.get(name)
        if theirs is None:
            report.skipped[name] = "not in the checkpoint"
        elif name.startswith(OUTPUT_PREFIX) and not same_alphabet:
            report.skipped[name] = "output layer, different alphabet"
        elif theirs.shape != tensor.shape:
            report.skipped[name] = "different shape"
        else:
            update[name] = theirs.to(tensor.dtype)
            report.loaded.append(name)
    if not any(t.dim() >= 2 for t in update.values()):  # a bias or BN statistic alone is no model
        raise DS2Error(f"{path}: no layer of this checkpoint matches the recipe's model "
                       "(a different architecture?)")
    model.load_state_dict(update, strict=False)
    return report
