"""Turning emissions into text: greedy and KenLM prefix beam search with DS2 character pruning
(beam.py, scorer.py), KenLM loading and building (lm.py, lm_build.py), alpha/beta tuning
(tune.py), and the file/manifest front end (api.py)."""
from ds2cli.decode.beam import BeamSearch, GreedySearch, Hypothesis, beam_search, greedy_search, prune_log_probs
from ds2cli.decode.config import BeamOptions, DecodeConfig, LMConfig

__all__ = ["BeamOptions", "BeamSearch", "DecodeConfig", "GreedySearch", "Hypothesis", "LMConfig", "beam_search", "greedy_search",
           "prune_log_probs"]
