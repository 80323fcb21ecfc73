"""`ds2cli stream`: recognise audio files through the streaming path (forward-only models)."""
from __future__ import annotations

import json
import sys

import click

from ds2cli.cli.common import user_errors
from ds2cli.cli.cmd_decode import decode_options


@click.command(short_help="Recognise audio files chunk by chunk with a streaming (forward-only) model.")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--chunk-ms", type=click.FloatRange(1, 60000), default=160.0, show_default=True,
              help="Audio per chunk fed to the recogniser.")
@click.option("--realtime", is_flag=True, help="Pace the chunks like a live source (one chunk per chunk length).")
@click.option("--endpoint-ms", type=click.FloatRange(0), default=1200.0, show_default=True,
              help="Silence after speech that closes a segment (0: one segment per file).")
@click.option("--max-segment", type=click.FloatRange(0), default=20.0, show_default=True,
              help="Seconds after which a segment is closed whatever it holds (0: no limit).")
@click.option("--url", help="Stream to a `ds2cli serve` server (ws://HOST:PORT/v1/stream) instead of a local "
                               "model; segments follow the server's endpointing.")
@click.option("--json", "as_json", is_flag=True, help="Print every event (partials and finals) as a JSON line.")
@click.option("--quiet", "-q", is_flag=True, help="No summary line on stderr.")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True,
              help="CPU threads of the network (a chunk is a few frames: more threads mostly wait on "
                   "each other, and lose badly on a busy machine)")
@decode_options("device", "precision")
@user_errors
def stream(files, chunk_ms, realtime, endpoint_ms, max_segment, url, as_json, quiet, **shared):
    """Recognise FILES through the streaming path: the audio is fed in chunks of --chunk-ms, and
    the text comes out while it is "spoken". On a terminal the partial result is shown in place;
    each final (one per segment, closed by --endpoint-ms of silence) is printed as a line. The
    final text equals `ds2cli decode`'s with the same model and options.

    \b
    The model must be forward-only (e.g. the tiny-stream recipe); model, LM and search options
    are those of `ds2cli decode`.

    \b
    Examples:
      ds2cli stream --recipe tiny-stream audio.wav
      ds2cli stream --checkpoint exp/tiny-stream/checkpoints/best.pt --realtime a.flac
      ds2cli stream --recipe tiny-stream --method greedy --json a.wav b.ogg
      ds2cli stream --url ws://127.0.0.1:8080/v1/stream audio.wav
    """
    from ds2cli.stream.endpoint import EndpointConfig

    if url:
        source = _remote_source(url)
    else:
        endpoint = EndpointConfig(silence_after_speech_ms=endpoint_ms, max_segment_s=max_segment)
        source = _local_source(shared, endpoint)
    _run(source, files, chunk_ms, realtime, as_json, quiet)


def _local_source(shared: dict, endpoint):
    """A function path -> (events iterator, FileResult), running the model in this process.
    (Another source, e.g. a server, can stand in for it.)"""
    from ds2cli.audio import read_audio
    from ds2cli.stream.files import FileResult, stream_wave
    from ds2cli.stream.setup import load_stream

    import torch

    torch.set_num_threads(shared["threads"])
    from ds2cli.decode.config import options_from

    options = options_from(shared)  # the DecodeConfig fields given
    setup = load_stream(shared["checkpoint"], endpoint=endpoint, recipe=shared["recipe"],
                        overrides=list(shared["overrides"]), exp_dir=shared["exp_dir"], lm=shared["lm"],
                        no_lm=shared["no_lm"], lm_level=shared["lm_level"], device=shared["device"],
                        options=options)

    def source(path, chunk_ms, realtime):
        wave = read_audio(path, setup.model.sample_rate)
        result = FileResult(str(path))
        return stream_wave(setup.recognizer(), wave, chunk_ms, realtime, result), result

    source.latency_ms = setup.model.latency_ms
    return source


def _remote_source(url: str):
    """Like `_local_source`, but each file is streamed to a `ds2cli serve` server at `url`."""
    import asyncio
    import time

    from ds2cli.audio import read_audio
    from ds2cli.serve.client import recognize
    from ds2cli.stream.files import FileResult

    def source(path, chunk_ms, realtime):
        wave = read_audio(path, 16000)
        t0 = time.perf_counter()
        reply = asyncio.run(recognize(url, wave, 16000, chunk_seconds=chunk_ms / 1000.0, realtime=realtime))
        events = [{k: v for k, v in e.items() if k not in ("arrival", "processed")} for e in reply.events]
        result = FileResult(str(path), finals=[e for e in events if e["type"] == "final"],
                            audio_seconds=len(wave) / 16000, compute_seconds=time.perf_counter() - t0)
        source.latency_ms = reply.ready.get("latency_ms", 0.0)
        return iter(events), result

    source.latency_ms = 0.0
    return source


def _run(source, files, chunk_ms, realtime, as_json, quiet) -> None:
    from ds2cli.errors import DS2Error

    live = sys.stdout.isatty() and not as_json
    many = len(files) > 1
    results, errors = [], 0
    for path in files:
        try:
            events, result = source(path, chunk_ms, realtime)
            for event in events:
                _show(event, path, many, live, as_json)
        except DS2Error as err:
            if live:
                click.echo("\r\033[K", nl=False)
            click.echo(f"Error: {err}", err=True)
            errors += 1
            continue
        results.append(result)
    if results and not quiet:
        audio = sum(r.audio_seconds for r in results)
        compute = sum(r.compute_seconds for r in results)
        click.echo(f"streamed {len(results)} file(s), {audio:.1f} s of audio, compute {compute:.2f} s "
                   f"(RTF {compute / audio if audio else 0:.3f}), model latency {source.latency_ms:.0f} ms, "
                   f"chunks of {chunk_ms:g} ms", err=True)
    if errors:
        raise SystemExit(1)


def _show(event: dict, path, many: bool, live: bool, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"file": str(path), **event} if many else event, ensure_ascii=False))
        return
    prefix = f"{path}\t" if many else ""
    if event["type"] == "partial":
        if live:
            click.echo(f"\r\033[K{prefix}{event['text']}", nl=False)
        return
    if live:
        click.echo("\r\033[K", nl=False)
    click.echo(f"{prefix}{event['text']}")

