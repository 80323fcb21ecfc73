"""The search of a stream: greedy or the KenLM prefix beam search, advanced chunk by chunk
(ds2cli.decode.beam), with the settings `ds2cli decode` would use."""
from __future__ import annotations

from dataclasses import dataclass, field

from ds2cli.decode.beam import BeamSearch, GreedySearch
from ds2cli.decode.config import DecodeConfig
from ds2cli.decode.lm_scorer import Scorer


@dataclass(frozen=True)
class SearchConfig:
    method: str = "greedy"  # "greedy" or "beam"
    scorer: Scorer | None = None  # the beam search's LM scorer (one may serve many streams)
    options: DecodeConfig = field(default_factory=DecodeConfig)

    def __post_init__(self):
        if self.method not in ("greedy", "beam"):
            raise ValueError(f"search method must be 'greedy' or 'beam', not {self.method!r}")
        if self.method == "beam" and self.scorer is None:
            raise ValueError("the beam search needs a scorer (ds2cli.decode.lm_scorer.make_scorer)")

    @classmethod
    def from_decoder(cls, decoder) -> "SearchConfig":
        """The search a ds2cli.decode Decoder runs (method, LM scorer, tuned alpha/beta, pruning)."""
        return cls(decoder.method, decoder.scorer if decoder.method == "beam" else None,
                   decoder.config)

    def new_search(self):
        """A fresh search (GreedySearch or BeamSearch: advance(log_probs), best(), finish()).
        The scorer's caches are never trimmed here: other streams may hold its states."""
        if self.method == "greedy":
            return GreedySearch()
        return BeamSearch(self.scorer, self.options, trim=False)
