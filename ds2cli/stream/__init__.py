"""Streaming recognition with a forward-only DS2 model: audio in chunks, text out as it is
spoken, the same emissions and final transcript as offline decoding.

network.py: StreamingModel and NetState (many streams per forward pass); search.py: the search
settings; endpoint.py: where segments end; recognizer.py: StreamRecognizer (one stream's
events); setup.py: everything loaded from decode's options."""
from ds2cli.stream.endpoint import EndpointConfig
from ds2cli.stream.network import NetState, StreamingModel
from ds2cli.stream.recognizer import StreamRecognizer
from ds2cli.stream.search import SearchConfig
from ds2cli.stream.setup import StreamSetup, load_stream

__all__ = ["EndpointConfig", "NetState", "SearchConfig", "StreamRecognizer", "StreamSetup", "StreamingModel",
           "load_stream"]
