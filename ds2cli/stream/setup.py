"""A streaming recogniser set up from the same options as `ds2cli decode`: checkpoint, recipe,
LM, tuned alpha/beta and search settings (ds2cli.decode.decoder.load_decoder), plus endpointing."""
from __future__ import annotations

from dataclasses import dataclass

from ds2cli.stream.endpoint import EndpointConfig
from ds2cli.stream.network import StreamingModel
from ds2cli.stream.recognizer import StreamRecognizer
from ds2cli.stream.search import SearchConfig


@dataclass
class StreamSetup:
    """What every stream of one model shares: the network, the search settings (with the LM
    scorer), the endpointing and the decoder's description (`meta`)."""

    model: StreamingModel
    search: SearchConfig
    endpoint: EndpointConfig
    meta: dict

    def recognizer(self) -> StreamRecognizer:
        """A recogniser for one new stream."""
        return StreamRecognizer(self.model, self.search, self.endpoint)


def load_stream(checkpoint=None, *, endpoint: EndpointConfig = EndpointConfig(), **decoder_options) -> StreamSetup:
    """`decoder_options` are load_decoder's (recipe, overrides, exp_dir, lm, no_lm, lm_level,
    device, options); DS2Error for a model that cannot stream."""
    from ds2cli.decode.decoder import load_decoder

    decoder = load_decoder(checkpoint, **decoder_options)
    model = StreamingModel(decoder.recognizer)
    meta = {**decoder.meta, "latency_ms": model.latency_ms, "endpoint": endpoint.__dict__}
    return StreamSetup(model, SearchConfig.from_decoder(decoder), endpoint, meta)
