"""Turning emissions into text: greedy and KenLM prefix beam search with DS2 character pruning
(beam.py, lm_scorer.py), KenLM loading and building (lm.py, lm_build.py), alpha/beta tuning
(tune.py), and the file/manifest front end (decoder.py), all with one DecodeConfig."""
from ds2cli.decode.beam import BeamSearch, GreedySearch, Hypothesis, beam_search, greedy_search, prune_log_probs
from ds2cli.decode.config import DecodeConfig, LMConfig

__all__ = ["BeamSearch", "DecodeConfig", "GreedySearch", "Hypothesis", "LMConfig", "beam_search", "greedy_search",
           "prune_log_probs"]
