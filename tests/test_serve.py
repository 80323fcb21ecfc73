"""`ds2cli serve` against real clients over localhost: a real server process (a random-weight
forward-only checkpoint the tests build), the library client and raw WebSocket clients that
misbehave. Each fault gets a clear error and a close code, and the other streams keep being
served."""
from __future__ import annotations

import asyncio
import json
import re
import time

import aiohttp
import numpy as np
import pytest

from ds2cli.audio import read_audio, write_audio
from ds2cli.serve.client import ServerError, StreamClient, encode, recognize, transcribe
from tests.serve_helpers import RATE, ServerProcess, make_audio, random_stream_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")
MAX_STREAMS, MAX_FRAME, MAX_PENDING, IDLE = 6, 16384, 0.5, 1.0


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return random_stream_checkpoint(tmp_path_factory.mktemp("serve") / "stream.pt")


@pytest.fixture(scope="module")
def server(checkpoint):
    with ServerProcess(checkpoint, "--max-streams", str(MAX_STREAMS), "--max-frame-bytes", str(MAX_FRAME),
                       "--idle-timeout", str(IDLE), "--max-pending-seconds", str(MAX_PENDING)) as srv:
        yield srv


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    path = tmp_path_factory.mktemp("audio") / "speech.wav"
    write_audio(path, make_audio(3.0, seed=1))
    return path


def run(coro):
    return asyncio.run(coro)


async def raw(url: str, *messages, wait: float = 5.0) -> tuple[list[dict], int | None, str]:
    """Send messages (str: text, bytes: binary) on a bare WebSocket; (JSON replies, close code, reason)."""
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url) as ws:
            for m in messages:
                if isinstance(m, bytes):
                    await ws.send_bytes(m)
                else:
                    await ws.send_str(m)
            replies = []
            while True:
                msg = await ws.receive(timeout=wait)
                if msg.type == aiohttp.WSMsgType.TEXT:
                    replies.append(json.loads(msg.data))
                else:
                    return replies, ws.close_code, msg.extra or ""


async def send_all(client: StreamClient, wave: np.ndarray, frame: int = 4000) -> None:
    for lo in range(0, len(wave), frame):
        await client.send(wave[lo:lo + frame])


START = json.dumps({"type": "start", "sample_rate": RATE, "format": "int16"})


def local_finals(checkpoint, wave: np.ndarray, chunk: int = 2560) -> list[dict]:
    """The finals of local streaming (ds2cli.stream) with the server's defaults."""
    from ds2cli.serve.service import load_service

    rec = load_service(checkpoint).recognizer()
    events = []
    for lo in range(0, len(wave), chunk):
        events += rec.accept(wave[lo:lo + chunk])
    return [e for e in events + rec.finish() if e["type"] == "final"]


# -- end to end -----------------------------------------------------------------------------------
def test_a_streamed_file_gives_the_local_streaming_finals_and_the_offline_text(server, checkpoint, wav):
    wave = read_audio(wav)
    result = run(recognize(server.url, wave, RATE, chunk_seconds=0.1))
    strip = [{k: v for k, v in f.items() if k != "arrival"} for f in result.finals]
    assert strip == local_finals(checkpoint, wave)
    assert result.text  # the random model says something on this audio
    assert result.done == {"type": "done", "segments": len(strip), "audio_seconds": 3.0,
                           "arrival": result.done["arrival"]}
    processed = [p["processed"] for p in result.partials]
    assert processed == sorted(processed) and processed[-1] <= 3.0
    assert run(transcribe(server.http, wav))["text"] == result.text


def test_float32_and_8khz_clients_are_served(server, checkpoint):
    wave = make_audio(2.0, seed=2)
    as_float = run(recognize(server.url, wave, RATE, fmt="float32"))
    assert as_float.text == " ".join(f["text"] for f in local_finals(checkpoint, wave) if f["text"])
    slow = wave.reshape(-1, 2).mean(1)  # 8 kHz: the server resamples (soxr) to the model's 16 kHz
    result = run(recognize(server.url, slow, 8000))
    assert result.done["audio_seconds"] == 2.0 and result.finals


def test_realtime_partials_follow_each_chunk(server):
    wave = make_audio(1.6, seed=3)
    result = run(recognize(server.url, wave, RATE, chunk_seconds=0.16, realtime=True))
    # one partial per processed chunk, each answering the chunk it followed
    assert len(result.partials) >= len(result.sent) - 2
    sent_at = dict(result.sent)
    for p in result.partials:
        assert p["processed"] in sent_at and p["arrival"] >= sent_at[p["processed"]]


def test_health_metrics_and_transcribe_errors(server, tmp_path):
    health = server.health()
    assert health["status"] == "ok" and health["streams"]["max"] == MAX_STREAMS
    assert health["model"]["sample_rate"] == RATE and health["model"]["latency_ms"] > 0
    status, body = server.get("/metrics")
    text = body.decode()
    assert status == 200
    for name in ("ds2_streams_active", "ds2_batch_streams_bucket", "ds2_partial_latency_seconds_bucket",
                 "ds2_final_latency_seconds_bucket", "ds2_step_seconds_count"):
        assert name in text
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF1234WAVEnot really audio")
    with pytest.raises(ServerError, match=r"unreadable audio.*HTTP 400"):
        run(transcribe(server.http, bad))


# -- bad input --------------------------------------------------------------------------------------
@pytest.mark.parametrize("messages,code,pattern", [
    ((b"\x00\x01" * 100,), 1008, "binary audio before the start message"),
    (("{not json",), 1008, "malformed JSON"),
    (('["start"]',), 1008, 'JSON object with a string "type"'),
    ((json.dumps({"type": "start", "sample_rate": RATE, "colour": "red"}),), 1008, "unknown field.*colour"),
    ((json.dumps({"type": "start", "sample_rate": RATE, "decoding": {"beam_width": 3}}),), 1008,
     "unknown decoding setting.*beam_width"),
    ((json.dumps({"type": "start", "sample_rate": RATE, "decoding": {"beam_size": "wide"}}),), 1008,
     "decoding: beam_size must be a number"),
    ((json.dumps({"type": "start", "sample_rate": 4000}),), 1003, "unsupported sample_rate 4000"),
    ((json.dumps({"type": "start", "sample_rate": RATE, "format": "mp3"}),), 1003, "unsupported format 'mp3'"),
    ((START, b"\x00\x01\x02"), 1003, "3 bytes is not a whole number of int16 samples"),
    ((START, b"\x00" * (2 * MAX_FRAME)), 1009, f"larger than the limit of {MAX_FRAME} bytes"),
    ((START, json.dumps({"type": "pause"})), 1008, "unknown message type 'pause'"),
])
def test_bad_input_gets_an_error_message_and_a_close_code(server, messages, code, pattern):
    replies, close_code, reason = run(raw(server.url, *messages))
    errors = [r for r in replies if r["type"] == "error"]
    assert len(errors) == 1 and re.search(pattern, errors[0]["message"]), replies
    assert close_code == code and reason
    assert replies[-1] == errors[0]  # nothing after the error


def test_a_client_that_goes_silent_gets_its_final_then_an_idle_timeout(server):
    async def go():
        client = await StreamClient.connect(server.url, RATE)
        await send_all(client, make_audio(1.0, seed=4))
        events, t0 = [], time.perf_counter()
        with pytest.raises(ServerError) as err:
            while (e := await client.receive()) is not None:
                events.append(e)
        await client.close()
        return events, err.value, time.perf_counter() - t0

    events, err, waited = run(go())
    assert "idle timeout" in str(err) and err.code == 1008
    assert [e["type"] for e in events][-2:] == ["final", "done"]
    assert waited >= IDLE * 0.9


def test_a_client_that_disconnects_mid_utterance_leaves_the_others_served(server):
    wave = make_audio(2.0, seed=5)

    async def go():
        async with aiohttp.ClientSession() as session:
            ws = await session.ws_connect(server.url)
            await ws.send_str(START)
            await ws.receive()  # ready
            await ws.send_bytes(encode(wave[:8000]))
            other = asyncio.ensure_future(recognize(server.url, wave, RATE, realtime=True))
            await asyncio.sleep(0.3)
            ws._response.connection.transport.abort()  # gone without a close frame
            result = await other
            await ws.close()
            return result

    result = run(go())
    assert result.done and result.finals
    deadline = time.time() + 5
    while server.health()["streams"]["active"] and time.time() < deadline:
        time.sleep(0.1)
    assert server.health()["streams"]["active"] == 0
    assert 'ds2_streams_total{outcome="disconnected"}' in server.get("/metrics")[1].decode()


def test_more_streams_than_the_limit_are_refused_at_once(server):
    wave = make_audio(2.0, seed=6)

    async def go():
        clients = [await StreamClient.connect(server.url, RATE) for _ in range(MAX_STREAMS)]
        t0 = time.perf_counter()
        with pytest.raises(ServerError) as err:
            await StreamClient.connect(server.url, RATE)
        refused_after = time.perf_counter() - t0
        finals = []
        for c in clients:  # the streams already open are served to the end
            await send_all(c, wave)
            await c.end()
            events = []
            while (e := await c.receive()) is not None:
                events.append(e)
            finals.append([e for e in events if e["type"] == "final"])
            await c.close()
        return err.value, refused_after, finals

    err, refused_after, finals = run(go())
    assert err.code == 1013 and f"server full: {MAX_STREAMS} streams active" in str(err)
    assert refused_after < IDLE  # refused, not queued until a slot frees
    assert all(f and f[-1]["text"] == finals[0][-1]["text"] for f in finals)


def test_an_overload_burst_is_served_with_bounded_queues(server, checkpoint):
    """Streams sending 4 s of audio as fast as they can: each reader pauses at the pending bound,
    everyone gets the right transcript."""
    waves = [make_audio(4.0, seed=10 + i) for i in range(MAX_STREAMS)]

    async def go():
        return await asyncio.gather(*[recognize(server.url, w, RATE, chunk_seconds=0.25) for w in waves])

    results = run(go())
    for w, r in zip(waves, results):
        assert r.text == " ".join(f["text"] for f in local_finals(checkpoint, w) if f["text"])
    metrics = server.get("/metrics")[1].decode()
    pending = float(re.search(r"^ds2_pending_seconds_max (\S+)", metrics, re.M).group(1))
    assert 0 < pending <= MAX_PENDING + MAX_FRAME / 2 / RATE
    batches = re.findall(r'^ds2_batch_streams_bucket\{le="1.0"\} (\S+)', metrics, re.M)
    count = float(re.search(r"^ds2_batch_streams_count (\S+)", metrics, re.M).group(1))
    assert float(batches[0]) < count  # Batch Dispatch ran some steps with several streams


def test_sigterm_sends_the_finals_of_streams_in_flight_and_exits_0(checkpoint):
    srv = ServerProcess(checkpoint, "--grace", "10")
    waves = [make_audio(4.0, seed=20 + i) for i in range(3)]

    async def go():
        tasks = [asyncio.ensure_future(recognize(srv.url, w, RATE, realtime=True)) for w in waves]
        await asyncio.sleep(1.2)
        srv.proc.send_signal(15)
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = run(go())
    code, log = srv.terminate()
    assert code == 0, log
    for r in results:  # a final for what was heard, then a close saying why
        assert isinstance(r, ServerError) and r.code == 1001 and "shutting down" in str(r), r
    with pytest.raises(ServerError, match="cannot connect"):
        run(StreamClient.connect(srv.url, RATE))


def test_sigterm_results_hold_the_finals(checkpoint):
    """The events before the going-away close: the last are a final and "done"."""
    srv = ServerProcess(checkpoint)

    async def go():
        client = await StreamClient.connect(srv.url, RATE)
        await send_all(client, make_audio(1.0, seed=30))
        await asyncio.sleep(0.5)
        srv.proc.send_signal(15)
        events = []
        with pytest.raises(ServerError):
            while (e := await client.receive()) is not None:
                events.append(e)
        await client.close()
        return events

    events = run(go())
    assert srv.terminate()[0] == 0
    assert [e["type"] for e in events][-2:] == ["final", "done"]
