"""Augmentation config: an ordered list of `{type, params, prob}` (a recipe's `[[augment]]` tables),
validated into frozen dataclasses, plus command-line overrides `TYPE.KEY=VALUE`.

Recipe form (TOML)::

    [[augment]]
    type = "speed"
    params = { factors = [0.9, 1.0, 1.1] }

    [[augment]]
    type = "noise"
    prob = 0.4                                  # DS2: noise on 40% of utterances
    params = { snr = [20, 30], snr_end = [0, 30] }   # SNR range moves linearly over training

Override form (``--augment``, repeatable): ``TYPE.KEY=VALUE`` where KEY is ``prob`` or a parameter
name and VALUE is a TOML value (``0.4``, ``[0, 30]``, ``"pink"``, ``true``; a bare word is taken
as a string). Overriding a type that is not in the list appends it with its defaults;
``TYPE.prob=0`` switches one off.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ds2cli.errors import RecipeError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

COLORS = ("white", "pink", "brown")


class _Bad(ValueError):
    """A parameter value that is wrong; turned into a RecipeError naming where it came from."""


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _Bad(f"{name} must be a number, got {value!r}")
    return float(value)


def _range(name: str, value: Any) -> tuple[float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise _Bad(f"{name} must be a range [low, high], got {value!r}")
    lo, hi = (_number(name, v) for v in value)
    if lo > hi:
        raise _Bad(f"{name} range is the wrong way round: [{value[0]}, {value[1]}] (low must be <= high)")
    return lo, hi


def _int(name: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _Bad(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _fraction(name: str, value: Any) -> float:
    value = _number(name, value)
    if not 0.0 <= value <= 1.0:
        raise _Bad(f"{name} must be between 0 and 1, got {value}")
    return value


@dataclass(frozen=True)
class NoiseParams:
    """Add noise at an SNR (dB) drawn uniformly from `snr`. With `snr_end`, the range moves
    linearly from `snr` at the first epoch to `snr_end` at the last (a curriculum)."""

    snr: tuple[float, float] = (0.0, 30.0)  # DS2 (as this project reads it): 0-30 dB
    snr_end: tuple[float, float] | None = None
    colors: tuple[str, ...] = COLORS  # generated noise, used only when no recordings are given

    @classmethod
    def parse(cls, d: dict) -> "NoiseParams":
        colors = d.get("colors", cls.colors)
        if isinstance(colors, str):
            colors = [colors]
        if not isinstance(colors, (list, tuple)) or not colors or any(c not in COLORS for c in colors):
            raise _Bad(f"colors must be a non-empty list of {', '.join(COLORS)}; got {colors!r}")
        end = d.get("snr_end")
        return cls(snr=_range("snr", d.get("snr", cls.snr)),
                   snr_end=None if end is None else _range("snr_end", end),
                   colors=tuple(colors))


@dataclass(frozen=True)
class SpeedParams:
    """Speed perturbation (tempo and pitch together, as Kaldi's): a factor drawn uniformly from
    `factors`; 1.1 makes the utterance 10% shorter."""

    factors: tuple[float, ...] = (0.9, 1.0, 1.1)

    @classmethod
    def parse(cls, d: dict) -> "SpeedParams":
        factors = d.get("factors", cls.factors)
        if not isinstance(factors, (list, tuple)) or not factors:
            raise _Bad(f"factors must be a non-empty list of numbers, got {factors!r}")
        out = []
        for f in factors:
            f = _number("factors", f)
            if not 0.5 <= f <= 2.0:
                raise _Bad(f"speed factors must lie in [0.5, 2.0], got {f}")
            # Rounded to 0.01 so the resampling ratio stays small (at most 200:100 polyphase).
            out.append(round(f, 2))
        return cls(tuple(out))


@dataclass(frozen=True)
class GainParams:
    """Scale the waveform by a gain (dB) drawn uniformly from `db`."""

    db: tuple[float, float] = (-6.0, 6.0)

    @classmethod
    def parse(cls, d: dict) -> "GainParams":
        return cls(_range("db", d.get("db", cls.db)))


@dataclass(frozen=True)
class SpecAugmentParams:
    """SpecAugment masks on features (Park et al. 2019, no time warp). Widths are drawn
    uniformly from [0, max]; no time mask is wider than `max_time_fraction` of the utterance."""

    freq_masks: int = 2
    freq_width: int = 27  # F (bins)
    time_masks: int = 2
    time_width: int = 100  # T (frames; 1 s at a 10 ms hop)
    max_time_fraction: float = 0.2  # p
    # "mean" fills with the utterance's mean feature value (0 on normalised features, and still
    # sensible on raw log spectra); a number fills with that value.
    mask_value: float | str = "mean"

    @classmethod
    def parse(cls, d: dict) -> "SpecAugmentParams":
        value = d.get("mask_value", cls.mask_value)
        if value != "mean":
            value = _number("mask_value", value)
        return cls(freq_masks=_int("freq_masks", d.get("freq_masks", cls.freq_masks)),
                   freq_width=_int("freq_width", d.get("freq_width", cls.freq_width)),
                   time_masks=_int("time_masks", d.get("time_masks", cls.time_masks)),
                   time_width=_int("time_width", d.get("time_width", cls.time_width)),
                   max_time_fraction=_fraction("max_time_fraction",
                                               d.get("max_time_fraction", cls.max_time_fraction)),
                   mask_value=value)


# type -> (params class, default probability, stage: "wave" runs on audio, "feats" on features)
TYPES: dict[str, tuple[type, float, str]] = {
    "noise": (NoiseParams, 0.4, "wave"),  # DS2 §5.1: 40% of utterances
    "speed": (SpeedParams, 1.0, "wave"),
    "gain": (GainParams, 1.0, "wave"),
    "specaugment": (SpecAugmentParams, 1.0, "feats"),
}


@dataclass(frozen=True)
class AugmentSpec:
    """One step: what to do (`type`, `params`) and how often (`prob`, per utterance and epoch)."""

    type: str
    params: Any
    prob: float

    @property
    def stage(self) -> str:
        return TYPES[self.type][2]

    def to_dict(self) -> dict:
        params = {k: list(v) if isinstance(v, tuple) else v
                  for k, v in dataclasses.asdict(self.params).items() if v is not None}
        return {"type": self.type, "params": params, "prob": self.prob}


@dataclass(frozen=True)
class AugmentConfig:
    """The ordered augmentation steps. Waveform steps run in list order, then feature steps."""

    specs: tuple[AugmentSpec, ...] = field(default_factory=tuple)

    @classmethod
    def from_list(cls, items: Sequence[dict] | None, source: str = "augment") -> "AugmentConfig":
        """Validate a recipe's list of `{type, params, prob}`; RecipeError names the bad entry."""
        if items is None:
            return cls()
        if not isinstance(items, (list, tuple)):
            raise RecipeError(f"{source}: expected a list of {{type, params, prob}} tables, got {type(items).__name__}")
        specs, seen = [], set()
        for i, item in enumerate(items):
            where = f"{source}[{i}]"
            if not isinstance(item, dict):
                raise RecipeError(f"{where}: expected a table with type, params, prob; got {item!r}")
            unknown = set(item) - {"type", "params", "prob"}
            if unknown:
                raise RecipeError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (known: type, params, prob)")
            kind = item.get("type")
            if kind not in TYPES:
                raise RecipeError(f"{where}: unknown augmentation type {kind!r} (known: {', '.join(TYPES)})")
            if kind in seen:
                raise RecipeError(f"{where}: {kind!r} appears twice; give each type once")
            seen.add(kind)
            specs.append(_make_spec(kind, item.get("params") or {}, item.get("prob"), f"{where} ({kind})"))
        return cls(tuple(specs))

    @classmethod
    def from_toml(cls, path) -> "AugmentConfig":
        """Read the `[[augment]]` tables of a TOML file (a whole recipe works; other keys are ignored)."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RecipeError(f"{path}: no such file") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
            raise RecipeError(f"{path}: not valid TOML ({err})") from None
        if "augment" not in data:
            raise RecipeError(f"{path}: no [[augment]] tables")
        return cls.from_list(data["augment"], source=f"{path}: augment")

    def to_list(self) -> list[dict]:
        """The plain-data form (for checkpoints and output records); `from_list` reads it back."""
        return [s.to_dict() for s in self.specs]

    def get(self, kind: str) -> AugmentSpec | None:
        return next((s for s in self.specs if s.type == kind), None)

    def with_overrides(self, overrides: Sequence[str]) -> "AugmentConfig":
        """Apply `TYPE.KEY=VALUE` overrides (see the module docstring) and re-validate."""
        items = self.to_list()
        for text in overrides:
            kind, key, value = _parse_override(text)
            item = next((it for it in items if it["type"] == kind), None)
            if item is None:
                item = {"type": kind, "params": {}, "prob": TYPES[kind][1]}
                items.append(item)
            if key == "prob":
                item["prob"] = value
            else:
                item["params"][key] = value
            _make_spec(kind, item["params"], item["prob"], f"--augment {text}")  # name the culprit
        return AugmentConfig.from_list(items, source="--augment")

    def describe(self) -> str:
        """One line, e.g. 'speed(p=1) -> noise(p=0.4)'."""
        if not self.specs:
            return "none"
        return " -> ".join(f"{s.type}(p={s.prob:g})" for s in self.specs)


def _make_spec(kind: str, params: Any, prob: Any, where: str) -> AugmentSpec:
    params_cls, default_prob, _ = TYPES[kind]
    if not isinstance(params, dict):
        raise RecipeError(f"{where}: params must be a table, got {params!r}")
    known = [f.name for f in dataclasses.fields(params_cls)]
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise RecipeError(f"{where}: unknown parameter(s) {', '.join(unknown)} (known: {', '.join(known)})")
    try:
        parsed = params_cls.parse(params)
        prob = _fraction("prob", default_prob if prob is None else prob)
    except _Bad as err:
        raise RecipeError(f"{where}: {err}") from None
    return AugmentSpec(kind, parsed, prob)


def _parse_override(text: str) -> tuple[str, str, Any]:
    """'noise.snr=[0,30]' -> ('noise', 'snr', [0, 30])."""
    target, sep, raw = text.partition("=")
    kind, dot, key = target.strip().partition(".")
    if not sep or not dot or not key:
        raise RecipeError(f"--augment {text!r}: expected TYPE.KEY=VALUE, e.g. noise.snr=[0,30] or noise.prob=0.4")
    if kind not in TYPES:
        raise RecipeError(f"--augment {text!r}: unknown augmentation type {kind!r} (known: {', '.join(TYPES)})")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        if not raw or not raw.replace("_", "").replace("-", "").isalnum():
            raise RecipeError(f"--augment {text!r}: {raw!r} is not a TOML value (a number, [a, b], \"text\")") from None
        value = raw  # a bare word, e.g. colors=pink
    return kind, key.strip(), value
