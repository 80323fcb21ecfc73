"""The server's Prometheus metrics (prometheus_client), in a registry of their own so several
servers in one process (tests) do not collide."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServerMetrics:
    def __init__(self):
        r = self.registry = CollectorRegistry()
        self.active = Gauge("ds2_streams_active", "Streams open now", registry=r)
        self.capacity = Gauge("ds2_streams_capacity", "Most streams served at once (--max-streams)", registry=r)
        self.streams = Counter("ds2_streams", "Streams ended, by outcome", ["outcome"], registry=r)
        self.refused = Counter("ds2_streams_refused", "Connections refused because the server was full",
                               registry=r)
        self.errors = Counter("ds2_stream_errors", "Streams closed with an error, by kind", ["kind"], registry=r)
        self.audio = Counter("ds2_audio_seconds", "Seconds of client audio received", registry=r)
        self.pending_max = Gauge("ds2_pending_seconds_max",
                                 "Most unprocessed audio one stream has held (bounded by the server)", registry=r)
        self.batch = Histogram("ds2_batch_streams", "Streams per network step (Batch Dispatch)",
                               buckets=BATCH_BUCKETS, registry=r)
        self.step = Histogram("ds2_step_seconds", "Time of one batched network step", buckets=LATENCY_BUCKETS,
                              registry=r)
        self.search = Histogram("ds2_search_seconds", "Time of one stream's search after a step",
                                buckets=LATENCY_BUCKETS, registry=r)
        self.partial_latency = Histogram(
            "ds2_partial_latency_seconds", "Arrival of a stream's newest audio to its partial result being sent",
            buckets=LATENCY_BUCKETS, registry=r)
        self.final_latency = Histogram(
            "ds2_final_latency_seconds", "Arrival of the end message to the stream's last final being sent",
            buckets=LATENCY_BUCKETS, registry=r)
        self.transcribe = Counter("ds2_transcribe_requests", "POST /transcribe requests, by status",
                                  ["status"], registry=r)

    def text(self) -> bytes:
        return generate_latest(self.registry)
