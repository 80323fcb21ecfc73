"""The [lm] and [decode] sections of a recipe; [decode] is also what one beam search takes."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from ds2cli.validation import check_fields

MAX_ORDER = 6  # KenLM's build_binary and query code are compiled for at most 6-grams



@dataclass
class LMConfig:
    """[lm]: how a recipe's n-gram language model is built from its training text (lm_text.txt)."""

    enabled: bool = True  # false: the recipe decodes without an LM
    order: int = 3  # n-gram order (lmplz -o)
    prune: list[int] = field(default_factory=list)  # lmplz --prune thresholds per order, e.g. [0, 0, 1]
    level: str = "auto"  # "word", "char" or "auto" (char for Mandarin, word otherwise)
    top_k: int = 0  # keep only the K most frequent words (0: all)
    memory: str = "auto"  # lmplz -S: "auto" (sized to the corpus), "20%", "1G", ...

    def __post_init__(self):
        if isinstance(self.prune, str):
            try:
                self.prune = [int(x) for x in self.prune.replace(",", " ").split()]
            except ValueError:
                raise ValueError(f"prune must be integers, e.g. '0 0 1', not {self.prune!r}") from None
        check_fields(self, {"order": f"[1, {MAX_ORDER}]", "top_k": ">= 0"})
        if not isinstance(self.prune, list) or any(isinstance(x, bool) or not isinstance(x, int) for x in self.prune):
            raise ValueError(f"prune must be a list of integers, e.g. [0, 0, 1], not {self.prune!r}")
        if self.level not in ("auto", "word", "char"):
            raise ValueError(f"level must be 'auto', 'word' or 'char', not {self.level!r}")
        if any(b < a for a, b in zip(self.prune, self.prune[1:])) or any(x < 0 for x in self.prune):
            raise ValueError(f"prune thresholds must be non-negative and non-decreasing, not {self.prune}")
        if self.top_k < 0:
            raise ValueError("top_k must be >= 0")


@dataclass(frozen=True)
class DecodeConfig:
    """[decode]: the one set of decoding options, from the recipe to the search (the prefix beam
    search maximises log p_ctc + alpha log p_lm + beta word_count). The defaults here are the
    only ones: a recipe's [decode] section overrides them, tuned values (decode_params.json)
    override alpha and beta, command-line options override everything. The first fields are the
    beam search's, in the order positional arguments take them."""

    beam_size: int = 100
    alpha: float = 0.8  # LM weight
    beta: float = 1.0  # word insertion bonus
    cutoff_prob: float = 0.99  # DS2 character pruning: cumulative probability kept per frame
    cutoff_top_n: int = 40  # ... and at most this many characters per frame
    unk_offset: float = -10.0  # extra natural-log LM cost of an out-of-vocabulary word
    nbest: int = 1
    recombine: bool = True  # keep only the best of prefixes whose futures score alike (see beam.py)
    beam_threshold: float = 10.0  # drop candidates this far (natural log) below the frame's best
    method: str = "auto"  # "greedy", "beam", or "auto" (beam when an LM is available)
    # < 0: an out-of-vocabulary word costs this per character instead (no <unk> probability,
    # no unk_offset), so gluing unknown words together never pays (see decode/lm_scorer.py)
    unk_char_offset: float = 0.0
    batch_size: int = 16  # utterances per network batch
    precision: str = "fp32"  # "fp32", "bf16", "fp16" (GPU only)
    # quiet added at each end of an utterance (at least half the convolutions' receptive field;
    # 0: none), so clips cut tight around the speech keep their first and last words (edges.py);
    # recipes whose test audio is cut tight set it (digits: 150)
    edge_pad_ms: float = 0.0

    def __post_init__(self):
        check_fields(self, {"beam_size": ">= 1", "alpha": ">= 0", "cutoff_prob": "(0, 1]", "cutoff_top_n": ">= 1",
                            "unk_offset": "<= 0", "nbest": ">= 1", "beam_threshold": "> 0 or inf",
                            "unk_char_offset": "<= 0", "batch_size": ">= 1", "edge_pad_ms": ">= 0"})
        if self.method not in ("auto", "greedy", "beam"):
            raise ValueError(f"method must be 'auto', 'greedy' or 'beam', not {self.method!r}")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be fp32, bf16 or fp16, not {self.precision!r}")

    def to_dict(self) -> dict:
        return asdict(self)


OPTION_NAMES = tuple(f.name for f in fields(DecodeConfig))


def options_from(params: dict) -> dict:
    """The DecodeConfig values among a command's parameters (None: not given)."""
    return {k: v for k, v in params.items() if k in OPTION_NAMES and v is not None}


def default_help(name: str, tuned: bool = False) -> str:
    """What `--help` says of a decoding option's default: where it comes from."""
    value = next(f.default for f in fields(DecodeConfig) if f.name == name)
    shown = {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value
    return f"[default: {'tuned, else ' if tuned else ''}the recipe's, else {shown}]"
