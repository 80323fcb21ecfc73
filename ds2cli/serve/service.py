"""What the server serves: one streaming model, the search settings of `ds2cli decode` (LM, tuned
alpha/beta, pruning), endpointing, a recogniser per stream, and the offline decoder that
POST /transcribe uses (the same network)."""
from __future__ import annotations

import dataclasses

import numpy as np

from ds2cli.stream import EndpointConfig, SearchConfig, StreamingModel, StreamRecognizer


class RecognitionService:
    def __init__(self, decoder, endpoint: EndpointConfig = EndpointConfig()):
        self.decoder = decoder
        self.model = StreamingModel(decoder.recognizer)  # DS2Error for a bidirectional model
        self.search = SearchConfig.from_decoder(decoder)
        self.endpoint = endpoint

    def search_for(self, decoding: dict) -> SearchConfig:
        """The server's search with a stream's own settings (protocol.DECODING_FIELDS) on top;
        ValueError/TypeError for values the search refuses."""
        if not decoding:
            return self.search
        method = decoding.get("method", self.search.method)
        if method == "auto":
            method = self.decoder.method
        if method == "beam" and self.decoder.lm is None and self.search.method != "beam":
            raise ValueError("this server has no language model; beam search needs one (start it with --lm)")
        beam = {k: v for k, v in decoding.items() if k != "method"}
        for k, v in beam.items():
            if isinstance(v, bool) != (k == "recombine") or not isinstance(v, (int, float)):
                raise TypeError(f"{k} must be {'true or false' if k == 'recombine' else 'a number'}, not {v!r}")
        options = dataclasses.replace(self.search.options, **beam)
        return SearchConfig(method, self.decoder.scorer if method == "beam" else None, options)

    def recognizer(self, decoding: dict | None = None) -> StreamRecognizer:
        return StreamRecognizer(self.model, self.search_for(decoding or {}), self.endpoint)

    def warm_up(self, seconds: float = 1.0) -> None:
        """Recognise a second of quiet noise once, so that the first streams do not pay for the
        search's compiled code being loaded and the LM's first lookups (hundreds of ms)."""
        rng = np.random.default_rng(0)
        recognizer = self.recognizer()
        recognizer.accept(1e-3 * rng.standard_normal(int(seconds * self.model.sample_rate)).astype(np.float32))
        recognizer.finish()
        # the network's emissions on quiet noise are mostly blank; random posteriors take every path
        logits = rng.standard_normal((int(seconds / self.model.frame_seconds), self.model.vocab_size))
        search = self.search.new_search()
        search.advance((logits - np.log(np.exp(logits).sum(1, keepdims=True))).astype(np.float32))
        search.best()
        search.finish()

    def describe(self) -> dict:
        meta = self.decoder.meta
        return {"checkpoint": meta.get("checkpoint"), "method": self.decoder.method, "lm": meta.get("lm"),
                "sample_rate": self.model.sample_rate, "frame_seconds": self.model.frame_seconds,
                "latency_ms": round(self.model.latency_ms, 1), "device": meta.get("device"),
                "precision": self.model.precision, "endpoint": dataclasses.asdict(self.endpoint)}


def load_service(checkpoint=None, *, endpoint: EndpointConfig = EndpointConfig(), **decoder_options
                 ) -> RecognitionService:
    """`decoder_options` are ds2cli.decode.decoder.load_decoder's (recipe, overrides, exp_dir, lm,
    no_lm, lm_level, device, options)."""
    from ds2cli.decode.decoder import load_decoder

    return RecognitionService(load_decoder(checkpoint, **decoder_options), endpoint)
