"""`ds2cli serve`: a streaming recognition server (WebSocket + HTTP) with DS2's Batch Dispatch."""
from __future__ import annotations

import click

from ds2cli.cli.common import user_errors
from ds2cli.cli.cmd_decode import decode_options


@click.command(short_help="Serve streaming recognition over WebSocket/HTTP (Batch Dispatch).")
@decode_options()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: all).")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="Port (0: any free one; the listening line says which).")
@click.option("--max-streams", type=click.IntRange(1), default=100, show_default=True,
              help="Streams served at once; more connections are refused at once.")
@click.option("--max-batch", type=click.IntRange(1), default=64, show_default=True,
              help="Streams per network step (1: one chunk at a time).")
@click.option("--max-wait-ms", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Wait this long for a fuller batch (0: DS2's eager dispatch).")
@click.option("--idle-timeout", type=click.FloatRange(0, min_open=True), default=10.0, show_default=True,
              help="Seconds without a message before a stream is closed.")
@click.option("--max-segment-seconds", type=click.FloatRange(0, min_open=True), default=20.0,
              show_default=True, help="A segment is closed with a final at this length (bounds memory).")
@click.option("--endpoint-silence-ms", type=click.FloatRange(0), default=1200.0, show_default=True,
              help="Silence after speech that ends a segment (0: only at the end of the stream).")
@click.option("--max-frame-bytes", type=click.IntRange(64), default=256 * 1024, show_default=True,
              help="Largest binary audio frame accepted.")
@click.option("--max-pending-seconds", type=click.FloatRange(0, min_open=True), default=2.0, show_default=True,
              help="Unprocessed audio held per stream; beyond it the server stops reading (backpressure).")
@click.option("--grace", "grace_seconds", type=click.FloatRange(0), default=5.0, show_default=True,
              help="On SIGTERM: seconds for streams in flight to get their finals.")
@click.option("--search-threads", type=click.IntRange(1), default=2, show_default=True,
              help="Threads for the per-stream searches.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:1, ...")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]),
              help="Inference precision  [default: the recipe's, else fp32]")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True,
              help="CPU threads of the network step (Batch Dispatch batches streams instead)")
@user_errors
def serve(checkpoint, recipe, overrides, exp_dir, lm, no_lm, lm_level, method, beam_size, alpha, beta,
          cutoff_prob, cutoff_top_n, unk_offset, beam_threshold, recombine, host, port, max_streams, max_batch,
          max_wait_ms, idle_timeout, max_segment_seconds, endpoint_silence_ms, max_frame_bytes, max_pending_seconds,
          grace_seconds, search_threads, device, precision, threads):
    """Serve a forward-only (streaming) model: WebSocket streams at /v1/stream, POST /transcribe
    for whole files, GET /health and GET /metrics (Prometheus). SIGTERM stops accepting, sends
    the finals of the streams in flight and exits 0.

    \b
    Examples:
      ds2cli serve --recipe tiny-stream --port 8080
      ds2cli serve --checkpoint exp/tiny-stream/checkpoints/best.pt --max-batch 1
      ds2cli stream --url ws://127.0.0.1:8080/v1/stream audio.wav
    """
    from ds2cli.serve.server import Server, config_from, run
    from ds2cli.serve.service import load_service
    from ds2cli.stream import EndpointConfig

    import torch

    torch.set_num_threads(threads)
    from ds2cli.decode.config import options_from

    options = options_from(click.get_current_context().params)  # the DecodeConfig fields given
    endpoint = EndpointConfig(silence_after_speech_ms=endpoint_silence_ms, max_segment_s=max_segment_seconds)
    service = load_service(checkpoint, endpoint=endpoint, recipe=recipe, overrides=list(overrides),
                           exp_dir=exp_dir, lm=lm, no_lm=no_lm, lm_level=lm_level, device=device, options=options)
    config = config_from(host=host, port=port, max_streams=max_streams, max_batch=max_batch, max_wait_ms=max_wait_ms,
                         idle_timeout=idle_timeout, max_frame_bytes=max_frame_bytes,
                         max_pending_seconds=max_pending_seconds, grace_seconds=grace_seconds,
                         search_threads=search_threads)
    service.warm_up()  # before listening: the first clients get the latency of the later ones
    run(Server(service, config))
