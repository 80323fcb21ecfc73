"""Deciding from alignment features whether a transcript is wrong (DS2 section 5).

Two filters with one interface (`reject_reason(features) -> str | None`):
- `ThresholdFilter`: limits on single features, e.g. "greedy_cer<=0.5,score_gap<=0.4";
- `LogisticFilter`: logistic regression on standardised features, fitted on correct transcripts
  against deliberately corrupted ones (`fit`).
Both save as plain JSON (nothing is unpickled) and load with `load_filter`."""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ds2cli.align.forced import FEATURE_NAMES
from ds2cli.errors import DS2Error
from ds2cli.fileio import write_json

FORMAT = "ds2cli-align-filter"
# Used by `--filter` without a model or thresholds. Set before measuring (a transcript whose
# forced path is far below the best path, or that greedy decoding half contradicts); on 17%
# corrupted FSDD and ARCTIC test sets it leaves 4.4% and 2.5% wrong while keeping 99.8% and
# 99.4% of the correct ones (benchmarks/results/align_cleaning.json). score_gap's scale depends
# on the model: a fitted filter (--fit-filter) adapts to it.
DEFAULT_THRESHOLDS = "greedy_cer<=0.5,score_gap<=0.5"
_THRESHOLD = re.compile(r"^\s*([a-z_]+)\s*(<=|>=)\s*([-+0-9.eE]+)\s*$")


@dataclass(frozen=True)
class Threshold:
    """A limit on one feature: feature <= value or feature >= value."""

    feature: str
    op: str
    value: float

    def violation(self, features: dict[str, float]) -> str | None:
        v = features[self.feature]
        ok = v <= self.value if self.op == "<=" else v >= self.value
        return None if ok else f"{self.feature} {v:.3g} {'>' if self.op == '<=' else '<'} {self.value:g}"

    def __str__(self) -> str:
        return f"{self.feature}{self.op}{self.value:g}"


def parse_thresholds(spec: str) -> list[Threshold]:
    """"greedy_cer<=0.5, score_gap<=0.4" -> Thresholds; ValueError naming the bad part."""
    out = []
    for part in filter(str.strip, spec.split(",")):
        m = _THRESHOLD.match(part)
        if not m:
            raise ValueError(f"threshold {part.strip()!r}: expected FEATURE<=VALUE or FEATURE>=VALUE")
        name, op, value = m.groups()
        if name not in FEATURE_NAMES:
            raise ValueError(f"threshold {part.strip()!r}: unknown feature {name!r} "
                             f"(known: {', '.join(FEATURE_NAMES)})")
        try:
            out.append(Threshold(name, op, float(value)))
        except ValueError:
            raise ValueError(f"threshold {part.strip()!r}: {value!r} is not a number") from None
    if not out:
        raise ValueError("no thresholds given")
    return out


class ThresholdFilter:
    kind = "thresholds"

    def __init__(self, thresholds: list[Threshold]):
        self.thresholds = thresholds

    @classmethod
    def parse(cls, spec: str = DEFAULT_THRESHOLDS) -> "ThresholdFilter":
        return cls(parse_thresholds(spec))

    def reject_reason(self, features: dict[str, float]) -> str | None:
        broken = [v for t in self.thresholds if (v := t.violation(features))]
        return "threshold: " + "; ".join(broken) if broken else None

    def describe(self) -> str:
        return "thresholds " + ",".join(str(t) for t in self.thresholds)

    def to_dict(self) -> dict:
        return {"format": FORMAT, "kind": self.kind, "thresholds": [str(t) for t in self.thresholds]}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))


class LogisticFilter:
    """p(wrong | features) = sigmoid(w . z + b), z the features standardised with the fit data's
    mean and std (and clipped to +-8 so one extreme value cannot dominate). Rejects when
    p(wrong) > `threshold`."""

    kind = "logistic"

    def __init__(self, features: list[str], mean: list[float], std: list[float], weights: list[float],
                 bias: float, threshold: float = 0.5, info: dict | None = None):
        unknown = [f for f in features if f not in FEATURE_NAMES]
        if unknown:
            raise ValueError(f"unknown feature(s) {', '.join(unknown)}")
        if not len(features) == len(mean) == len(std) == len(weights):
            raise ValueError("features, mean, std and weights must have the same length")
        self.features, self.mean, self.std = list(features), list(mean), list(std)
        self.weights, self.bias, self.threshold = list(weights), float(bias), float(threshold)
        self.info = info or {}

    def _matrix(self, rows: list[dict[str, float]]) -> np.ndarray:
        """(N, D) standardised feature matrix."""
        x = np.array([[r[f] for f in self.features] for r in rows], dtype=np.float64).reshape(len(rows), -1)
        return np.clip((x - np.array(self.mean)) / np.array(self.std), -8.0, 8.0)

    def p_wrong(self, rows: list[dict[str, float]]) -> np.ndarray:
        """(N,) probability that each transcript is wrong."""
        return _sigmoid(self._matrix(rows) @ np.array(self.weights) + self.bias)

    def reject_reason(self, features: dict[str, float]) -> str | None:
        p = float(self.p_wrong([features])[0])
        return f"classifier: p(wrong) {p:.2f} > {self.threshold:.2f}" if p > self.threshold else None

    def describe(self) -> str:
        return f"logistic regression on {len(self.features)} features, reject p(wrong) > {self.threshold:.2f}"

    @classmethod
    def fit(cls, rows: list[dict[str, float]], wrong: list[bool], features: list[str] = FEATURE_NAMES,
            l2: float = 1.0, threshold: float = 0.5, iterations: int = 50) -> "LogisticFilter":
        """Fit by Newton's method (L2-penalised, classes weighted to equal total weight) on
        feature dicts `rows` labelled `wrong`."""
        y = np.asarray(wrong, dtype=np.float64)
        if len(rows) != len(y) or y.min(initial=1) == y.max(initial=0):
            raise ValueError("fitting needs both correct and wrong transcripts, one label per row")
        raw = np.array([[r[f] for f in features] for r in rows], dtype=np.float64)
        mean, std = raw.mean(0), raw.std(0)
        std[std < 1e-8] = 1.0
        model = cls(features, mean.tolist(), std.tolist(), [0.0] * len(features), 0.0, threshold)
        x = np.hstack([model._matrix(rows), np.ones((len(rows), 1))])  # (N, D+1), last column: bias
        sample_w = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
        penalty = np.full(x.shape[1], l2)
        penalty[-1] = 0.0  # the bias is not penalised
        w = np.zeros(x.shape[1])
        for _ in range(iterations):
            p = _sigmoid(x @ w)
            grad = x.T @ (sample_w * (p - y)) + penalty * w
            hess = (x * (sample_w * p * (1 - p))[:, None]).T @ x + np.diag(penalty + 1e-9)
            step = np.linalg.solve(hess, grad)
            w -= step
            if np.abs(step).max() < 1e-8:
                break
        model.weights, model.bias = w[:-1].tolist(), float(w[-1])
        p = model.p_wrong(rows)
        model.info = {"fit_utterances": len(rows), "fit_wrong": int(y.sum()),
                      "fit_accuracy": float(((p > threshold) == (y == 1)).mean()),
                      "fit_kept_correct": float((p[y == 0] <= threshold).mean()),
                      "fit_rejected_wrong": float((p[y == 1] > threshold).mean())}
        return model

    def to_dict(self) -> dict:
        return {"format": FORMAT, "kind": self.kind, "features": self.features, "mean": self.mean,
                "std": self.std, "weights": self.weights, "bias": self.bias, "threshold": self.threshold,
                "info": self.info}


Filter = ThresholdFilter | LogisticFilter


def save_filter(path, flt: Filter) -> None:
    write_json(path, flt.to_dict())


def load_filter(path) -> Filter:
    """A filter saved by `save_filter` (or written by hand); DS2Error naming the file otherwise."""
    path = Path(path)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DS2Error(f"{path}: no such filter file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DS2Error(f"{path}: not a JSON filter file ({err})") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise DS2Error(f"{path}: not a ds2cli alignment filter (no '{FORMAT}' format marker)")
    try:
        if d.get("kind") == ThresholdFilter.kind:
            return ThresholdFilter.parse(",".join(d["thresholds"]))
        if d.get("kind") == LogisticFilter.kind:
            model = LogisticFilter(d["features"], d["mean"], d["std"], d["weights"], d["bias"],
                                   d.get("threshold", 0.5), d.get("info"))
            if not all(math.isfinite(v) for v in model.weights + model.mean + model.std + [model.bias]):
                raise ValueError("non-finite parameters")
            return model
    except (KeyError, TypeError, ValueError) as err:
        raise DS2Error(f"{path}: bad filter ({type(err).__name__}: {err})") from None
    raise DS2Error(f"{path}: unknown filter kind {d.get('kind')!r} (expected 'thresholds' or 'logistic')")
