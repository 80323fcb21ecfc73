"""One stream: its network state, its incremental search and its endpointing, turned into the
events a client sees:

    {"type": "partial", "segment": k, "text": str}
    {"type": "final", "segment": k, "text": str, "words": [{"word", "start", "end"}, ...],
     "start": s, "end": s}

Times are seconds from the start of the stream; a final's start/end span its segment's frames.
Segments are numbered from 0 in the order of their finals; a stream always ends with a final
(empty text when nothing was said)."""
from __future__ import annotations

import numpy as np

from ds2cli.decode.decoder import hypothesis_text, word_timing
from ds2cli.decode.timing import token_spans
from ds2cli.stream.endpoint import CLOSE, EndpointConfig, Endpointer
from ds2cli.stream.network import StreamingModel
from ds2cli.stream.search import SearchConfig


class StreamRecognizer:
    """NetState + incremental search (greedy or KenLM beam) + endpointing for one stream."""

    def __init__(self, model: StreamingModel, search: SearchConfig = SearchConfig(),
                 endpoint: EndpointConfig = EndpointConfig()):
        self.model, self.search_config, self.endpoint_config = model, search, endpoint
        self.tokenizer = model.tokenizer
        self.state = model.new_state()
        self.endpointer = Endpointer(endpoint, model.frame_seconds)
        self.segment = 0  # number of the open segment
        self.frames = 0  # emission frames seen
        self.finals = 0
        self._new_segment()

    @classmethod
    def from_decoder(cls, decoder, endpoint: EndpointConfig = EndpointConfig(),
                     model: StreamingModel | None = None) -> "StreamRecognizer":
        """The stream twin of a ds2cli.decode Decoder (its network, method, LM and parameters).
        Pass `model` to share one StreamingModel between many recognisers."""
        return cls(model or StreamingModel(decoder.recognizer), SearchConfig.from_decoder(decoder), endpoint)

    def _new_segment(self) -> None:
        self.search = self.search_config.new_search()
        self.seg_start = self.frames  # first frame of the segment
        self.seg_frames: list[np.ndarray] = []  # its emissions, for the word times
        self.partial = ""
        self.endpointer.reset()

    # -- input --------------------------------------------------------------------------------
    def accept(self, samples: np.ndarray) -> list[dict]:
        """Feed float32 samples at model.sample_rate; the events they caused."""
        return self.on_emissions(self.model.step([self.state], [samples])[0])

    def finish(self, flushed: bool = False) -> list[dict]:
        """Flush the network and the search: the remaining events, ending with a final.
        `flushed`: the caller already ran the stream's last network step (a server's batched
        step with final=True) and passed its frames to on_emissions; only the search is flushed."""
        events = [] if flushed else self.on_emissions(
            self.model.step([self.state], [np.zeros(0, np.float32)], [True])[0])
        had_finals = self.finals
        final = self._final()
        if final["text"] or not had_finals:  # trailing silence after other finals says nothing
            events.append(final)
        return events

    def on_emissions(self, frames: np.ndarray) -> list[dict]:
        """Search and endpointing on the stream's next emission frames (t, V) (for callers that
        run the network themselves, batched over streams)."""
        events = []
        frames = np.asarray(frames, dtype=np.float32)
        while len(frames):
            used, cut = self.endpointer.scan(frames)
            self._advance(frames[:used])
            frames = frames[used:]
            if cut == CLOSE:
                events.append(self._final())
            elif cut is not None:  # silence only: start again, nothing to report
                self._new_segment()
        text = self._text(self.search.best().tokens)
        if text != self.partial:
            self.partial = text
            events.append({"type": "partial", "segment": self.segment, "text": text})
        return events

    # -- internals ----------------------------------------------------------------------------
    def _advance(self, frames: np.ndarray) -> None:
        self.search.advance(frames)
        self.seg_frames.append(frames)
        self.frames += len(frames)

    def _text(self, tokens: list[int]) -> str:
        return hypothesis_text(tokens, self.tokenizer)

    def _final(self) -> dict:
        """Close the open segment: its best transcript with word times, as ds2cli decode gives."""
        tokens = self.search.finish()[0].tokens
        emissions = (np.concatenate(self.seg_frames) if self.seg_frames
                     else np.zeros((0, self.model.vocab_size), np.float32))
        spans = [(a + self.seg_start, b + self.seg_start) for a, b in token_spans(emissions, tokens)]
        fs = self.model.frame_seconds
        event = {"type": "final", "segment": self.segment, "text": self._text(tokens),
                 "words": word_timing(tokens, spans, self.tokenizer, fs),
                 "start": round(self.seg_start * fs, 3), "end": round(self.frames * fs, 3)}
        self.segment += 1
        self.finals += 1
        self._new_segment()
        return event
