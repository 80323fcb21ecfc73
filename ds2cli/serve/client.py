"""A Python client of `ds2cli serve` (aiohttp): stream audio over the WebSocket protocol and
collect partial and final results, optionally paced in real time; transcribe whole files.

    result = asyncio.run(recognize("ws://127.0.0.1:8080/v1/stream", wave, 16000))
    print(result.text)
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field

import aiohttp
import numpy as np

from ds2cli.errors import DS2Error


class ServerError(DS2Error):
    """The server refused or ended the stream with an error message (and a close code)."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


@dataclass
class StreamResult:
    """What came back for one stream. Each event is the server's JSON plus "arrival" (client
    clock, time.perf_counter()); `sent` holds (client audio seconds sent so far, send time) per
    frame, and `end_sent` the send time of the end message."""

    ready: dict = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    done: dict | None = None
    sent: list[tuple[float, float]] = field(default_factory=list)
    end_sent: float = 0.0

    @property
    def finals(self) -> list[dict]:
        return [e for e in self.events if e["type"] == "final"]

    @property
    def partials(self) -> list[dict]:
        return [e for e in self.events if e["type"] == "partial"]

    @property
    def text(self) -> str:
        """The stream's transcript: the finals' texts joined."""
        return " ".join(f["text"] for f in self.finals if f["text"])


def encode(samples: np.ndarray, fmt: str = "int16") -> bytes:
    """float32 samples in [-1, 1] (n,) -> little-endian bytes of `fmt`."""
    if fmt == "int16":
        return np.round(np.clip(samples, -1.0, 32767 / 32768) * 32768).astype("<i2").tobytes()
    if fmt == "float32":
        return np.asarray(samples, dtype="<f4").tobytes()
    raise ValueError(f"format must be int16 or float32, not {fmt!r}")


class StreamClient:
    """One open stream. Use `connect`, then `send` audio, `end`, and read `receive` until None."""

    def __init__(self, session: aiohttp.ClientSession, ws, owns_session: bool):
        self._session, self.ws, self._owns = session, ws, owns_session
        self.fmt = "int16"
        self.ready: dict = {}

    @classmethod
    async def connect(cls, url: str, sample_rate: int, fmt: str = "int16", decoding: dict | None = None,
                      stream_id: str | None = None, session: aiohttp.ClientSession | None = None,
                      timeout: float = 30.0) -> "StreamClient":
        """Open the WebSocket, send the start message and wait for "ready"; ServerError if refused."""
        owns = session is None
        session = session or aiohttp.ClientSession()
        try:
            ws = await session.ws_connect(url, max_msg_size=0, timeout=aiohttp.ClientWSTimeout(ws_close=5.0))
        except (aiohttp.ClientError, OSError) as err:
            if owns:
                await session.close()
            raise ServerError(f"{url}: cannot connect ({type(err).__name__}: {err})") from None
        client = cls(session, ws, owns)
        client.fmt = fmt
        start = {"type": "start", "sample_rate": int(sample_rate), "format": fmt}
        if decoding:
            start["decoding"] = decoding
        if stream_id is not None:
            start["id"] = stream_id
        try:
            await ws.send_str(json.dumps(start))
            reply = await asyncio.wait_for(client.receive(), timeout)
        except BaseException:
            await client.close()
            raise
        if reply is None or reply.get("type") != "ready":
            await client.close()
            raise ServerError(f"{url}: expected a ready message, got {reply!r}")
        client.ready = reply
        return client

    async def send(self, samples: np.ndarray) -> None:
        await self.ws.send_bytes(encode(samples, self.fmt))

    async def send_raw(self, data: bytes | str) -> None:
        """Anything, as it is (for tests of the server's error handling)."""
        await (self.ws.send_bytes(data) if isinstance(data, bytes) else self.ws.send_str(data))

    async def end(self) -> None:
        await self.ws.send_str('{"type": "end"}')

    async def receive(self) -> dict | None:
        """The next result, with its "arrival" time; None once the stream is over (after "done"
        and the close); ServerError for an error message or an abnormal close."""
        msg = await self.ws.receive()
        if msg.type == aiohttp.WSMsgType.TEXT:
            event = json.loads(msg.data)
            event["arrival"] = time.perf_counter()
            if event.get("type") == "error":
                close = await self.ws.receive()
                code = close.data if close.type == aiohttp.WSMsgType.CLOSE else self.ws.close_code
                raise ServerError(event.get("message", "error"), code)
            return event
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
            code = msg.data if msg.type == aiohttp.WSMsgType.CLOSE else self.ws.close_code
            if code not in (1000, None):
                raise ServerError(f"stream closed by the server (code {code}: {msg.extra or 'no reason'})", code)
            return None
        raise ServerError(f"unexpected WebSocket message {msg.type.name}")

    async def close(self) -> None:
        await self.ws.close()
        if self._owns:
            await self._session.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()


async def recognize(url: str, wave: np.ndarray, sample_rate: int, *, chunk_seconds: float = 0.16,
                    realtime: bool = False, fmt: str = "int16", decoding: dict | None = None,
                    stream_id: str | None = None, session: aiohttp.ClientSession | None = None,
                    start_delay: float = 0.0) -> StreamResult:
    """Stream `wave` (n,) float32 at `sample_rate` in chunks of `chunk_seconds`; with `realtime`,
    chunk k is sent when its last sample would have been spoken (start time + (k + 1) chunks),
    as a live microphone would. Returns every event received, with arrival times."""
    if start_delay:
        await asyncio.sleep(start_delay)
    client = await StreamClient.connect(url, sample_rate, fmt, decoding, stream_id, session)
    result = StreamResult(ready=client.ready)
    step = max(1, int(round(chunk_seconds * sample_rate)))

    async def sender():
        t0 = time.perf_counter()
        for k, lo in enumerate(range(0, len(wave), step)):
            chunk = wave[lo: lo + step]
            if realtime:
                due = t0 + (lo + len(chunk)) / sample_rate
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
            await client.send(chunk)
            result.sent.append(((lo + len(chunk)) / sample_rate, time.perf_counter()))
        await client.end()
        result.end_sent = time.perf_counter()

    async def receiver():
        while (event := await client.receive()) is not None:
            if event["type"] == "done":
                result.done = event
            else:
                result.events.append(event)

    try:
        send_task = asyncio.ensure_future(sender())
        await receiver()
        await send_task
    finally:
        if not send_task.done():
            send_task.cancel()
        await client.close()
    return result


async def transcribe(base_url: str, path, utt_id: str | None = None,
                     session: aiohttp.ClientSession | None = None) -> dict:
    """POST a file to /transcribe -> the JSON row that `ds2cli decode --json` prints."""
    from pathlib import Path

    owns = session is None
    session = session or aiohttp.ClientSession()
    try:
        params = {"id": utt_id or Path(path).name}
        async with session.post(base_url.rstrip("/") + "/transcribe", data=Path(path).read_bytes(),
                                params=params) as resp:
            body = await resp.json(content_type=None)
            if resp.status != 200:
                raise ServerError(f"{path}: {body.get('message', resp.reason)} (HTTP {resp.status})")
            return body
    finally:
        if owns:
            await session.close()
