"""The HTTP/WebSocket server (aiohttp): /v1/stream (streaming recognition through the Batch
Dispatch scheduler), POST /transcribe (a whole file, decoded offline), GET /health and
GET /metrics (Prometheus text). See protocol.py for the messages."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass

from aiohttp import WSMsgType, web
from prometheus_client import CONTENT_TYPE_LATEST

from ds2cli.errors import DS2Error
from ds2cli.serve import protocol as P
from ds2cli.serve.metrics import ServerMetrics
from ds2cli.serve.scheduler import BatchDispatcher

log = logging.getLogger("ds2cli.serve")


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8080  # 0: any free port (the listening line says which)
    max_streams: int = 100  # connections beyond this are refused at once
    max_batch: int = 64  # streams per network step
    max_wait_ms: float = 0.0  # 0: the paper's eager dispatch
    idle_timeout: float = 10.0  # seconds without a message before a stream is closed
    max_frame_bytes: int = 256 * 1024  # largest binary frame accepted
    max_pending_seconds: float = 2.0  # unprocessed audio held per stream before reading pauses
    grace_seconds: float = 5.0  # on SIGTERM: time for streams in flight to get their finals
    search_threads: int = 2
    max_upload_mb: float = 64.0  # POST /transcribe body limit
    max_transcribe: int = 2  # concurrent POST /transcribe; more get 503


class _Idle(Exception):
    pass


class _Stop(Exception):
    pass


class _Gone(Exception):
    pass


class Server:
    """The model service behind the HTTP routes. `service` provides `model` (a StreamingModel),
    `recognizer(decoding: dict)` (a new StreamRecognizer), `decoder` (an offline Decoder for
    /transcribe) and `describe()` (a dict for /health)."""

    def __init__(self, service, config: ServeConfig = ServeConfig()):
        self.service, self.config = service, config
        self.metrics = ServerMetrics()
        self.metrics.capacity.set(config.max_streams)
        self.dispatcher: BatchDispatcher | None = None
        self.sessions: set[_Session] = set()
        self.stopping: asyncio.Future | None = None
        self._transcribing = 0
        self.started = time.time()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=int(self.config.max_upload_mb * 1024 * 1024))
        app.router.add_get(P.STREAM_PATH, self.stream)
        app.router.add_post("/transcribe", self.transcribe)
        app.router.add_get("/health", self.health)
        app.router.add_get("/metrics", self.prometheus)
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def _on_startup(self, app) -> None:
        self.stopping = asyncio.get_running_loop().create_future()
        self.dispatcher = BatchDispatcher(
            self.service.model, max_batch=self.config.max_batch, max_wait_ms=self.config.max_wait_ms,
            max_pending_seconds=self.config.max_pending_seconds, search_threads=self.config.search_threads,
            metrics=self.metrics)
        self.dispatcher.start()

    async def _on_cleanup(self, app) -> None:
        await self.dispatcher.close()

    # -- routes -------------------------------------------------------------------------------
    async def stream(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=max(4 * self.config.max_frame_bytes, 1 << 20), timeout=2.0)
        await ws.prepare(request)
        if self.stopping.done():
            await _refuse(ws, "server shutting down; connect to another replica", P.GOING_AWAY)
            return ws
        if len(self.sessions) >= self.config.max_streams:
            self.metrics.refused.inc()
            await _refuse(ws, f"server full: {len(self.sessions)} streams active (--max-streams "
                              f"{self.config.max_streams}); try again later or another replica", P.TRY_LATER)
            return ws
        session = _Session(self, ws)
        self.sessions.add(session)
        self.metrics.active.set(len(self.sessions))
        try:
            await session.run()
        finally:
            self.sessions.discard(session)
            self.metrics.active.set(len(self.sessions))
        return ws

    async def transcribe(self, request: web.Request) -> web.Response:
        """POST a whole audio file (any format `ds2cli decode` reads) -> its JSON row."""
        if self._transcribing >= self.config.max_transcribe:
            self.metrics.transcribe.labels("503").inc()
            return _json_error(503, f"busy: {self._transcribing} transcriptions running; try again later")
        body = await request.read()
        if not body:
            self.metrics.transcribe.labels("400").inc()
            return _json_error(400, "empty request body: POST the audio file's bytes")
        self._transcribing += 1
        try:
            row = await asyncio.get_running_loop().run_in_executor(
                None, _transcribe_bytes, self.service.decoder, body, request.query.get("id", "audio"))
        except DS2Error as err:
            self.metrics.transcribe.labels("400").inc()
            return _json_error(400, str(err))
        finally:
            self._transcribing -= 1
        self.metrics.transcribe.labels("200").inc()
        return web.json_response(row)

    async def health(self, request: web.Request) -> web.Response:
        active = len(self.sessions)
        draining = self.stopping.done()
        body = {"status": "draining" if draining else "ok", "model": self.service.describe(),
                "streams": {"active": active, "max": self.config.max_streams},
                "capacity": max(0, self.config.max_streams - active), "max_batch": self.config.max_batch,
                "max_wait_ms": self.config.max_wait_ms, "uptime_seconds": round(time.time() - self.started, 1)}
        return web.json_response(body, status=503 if draining else 200)

    async def prometheus(self, request: web.Request) -> web.Response:
        resp = web.Response(body=self.metrics.text())
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    # -- shutdown -----------------------------------------------------------------------------
    async def drain(self) -> None:
        """Ask every stream to finish (finals, then close) and wait up to the grace period."""
        if not self.stopping.done():
            self.stopping.set_result(True)
        tasks = [s.task for s in list(self.sessions) if s.task is not None]
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=self.config.grace_seconds)
            for s in list(self.sessions):
                if s.task in pending:
                    await s.abort("server shutting down: grace period over before the final result",
                                  P.GOING_AWAY)


class _Session:
    """One WebSocket stream: start, audio, end; errors close it with a reason."""

    def __init__(self, server: Server, ws: web.WebSocketResponse):
        self.server, self.ws = server, ws
        self.stream = None
        self.task = asyncio.current_task()
        self.closed = False

    async def run(self) -> None:
        m = self.server.metrics
        outcome = "completed"
        try:
            await self._serve()
        except P.ProtocolError as err:
            outcome = "error"
            m.errors.labels(_kind(err.code)).inc()
            await self.abort(str(err), err.code)
        except _Idle:
            outcome = "idle"
            m.errors.labels("idle").inc()
            await self._finish()
            await self.abort(f"no message for {self.server.config.idle_timeout:g} s (idle timeout); "
                             "stream closed after its final result", P.POLICY)
        except _Stop:
            outcome = "shutdown"
            await self._finish()
            await self._close(P.GOING_AWAY, "server shutting down")
        except _Gone:
            outcome = "disconnected"
        except (ConnectionResetError, asyncio.CancelledError):
            outcome = "disconnected"
        except Exception as err:  # one stream's bug must not take down the server
            log.exception("stream failed")
            outcome = "error"
            m.errors.labels("internal").inc()
            await self.abort(f"internal error ({type(err).__name__})", P.INTERNAL)
        finally:
            if self.stream is not None and not self.stream.finished.done():
                self.server.dispatcher.drop(self.stream)
            m.streams.labels(outcome).inc()

    async def _serve(self) -> None:
        cfg, service = self.server.config, self.server.service
        msg = await self._receive()
        if msg.type == WSMsgType.BINARY:
            raise P.ProtocolError('binary audio before the start message; send {"type": "start", '
                                  '"sample_rate": ..., "format": ...} first')
        start = P.parse_start(P.parse_json(msg.data))
        try:
            recognizer = service.recognizer(start.decoding)
        except (DS2Error, ValueError, TypeError) as err:
            raise P.ProtocolError(f"start message: decoding: {err}") from None
        self.converter = P.AudioConverter(start, service.model.sample_rate)
        self.stream = self.server.dispatcher.open(recognizer, self._deliver, start.sample_rate)
        await self.ws.send_json({"type": "ready", "id": start.id, "sample_rate": service.model.sample_rate,
                                 "frame_seconds": service.model.frame_seconds,
                                 "latency_ms": service.model.latency_ms})
        while True:
            msg = await self._receive()
            if msg.type == WSMsgType.BINARY:
                if len(msg.data) > cfg.max_frame_bytes:
                    raise P.ProtocolError(f"binary frame of {len(msg.data)} bytes is larger than the limit "
                                          f"of {cfg.max_frame_bytes} bytes; send smaller chunks", P.TOO_BIG)
                samples = self.converter.convert(msg.data)
                n_client = len(msg.data) // self.converter.dtype.itemsize
                self.server.metrics.audio.inc(n_client / start.sample_rate)
                await self.server.dispatcher.feed(self.stream, samples, n_client)
            else:
                P.parse_after_start(P.parse_json(msg.data))
                break
        await self._finish()
        await self._close(P.NORMAL, "end of stream")

    async def _finish(self) -> None:
        """Final step and search of the stream, then a "done" message."""
        if self.stream is None or self.stream.closed:
            return
        await self.server.dispatcher.end(self.stream, self.converter.flush())
        await self._deliver([{"type": "done", "segments": self.stream.segments,
                              "audio_seconds": round(self.converter.seconds_in, 3)}])

    async def _receive(self):
        """The next data message; raises _Idle, _Stop or _Gone instead of returning other kinds."""
        recv = asyncio.ensure_future(self.ws.receive())
        done, _ = await asyncio.wait({recv, self.server.stopping}, timeout=self.server.config.idle_timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        if recv not in done:
            recv.cancel()
            raise _Stop() if self.server.stopping.done() else _Idle()
        msg = recv.result()
        if msg.type in (WSMsgType.BINARY, WSMsgType.TEXT):
            return msg
        if msg.type == WSMsgType.ERROR and getattr(msg.data, "code", None) == P.TOO_BIG:
            raise P.ProtocolError(f"frame larger than the limit of {self.server.config.max_frame_bytes} "
                                  "bytes; send smaller chunks", P.TOO_BIG)
        raise _Gone()

    async def _deliver(self, events: list[dict]) -> None:
        if self.closed or self.ws.closed:
            return
        try:
            for e in events:
                await self.ws.send_json(e)
        except (ConnectionResetError, RuntimeError):
            self.closed = True

    async def abort(self, message: str, code: int) -> None:
        await self._deliver([P.error_message(message)])
        await self._close(code, message)

    async def _close(self, code: int, reason: str) -> None:
        self.closed = True
        if not self.ws.closed:
            try:
                await self.ws.close(code=code, message=P.close_reason(reason).encode("utf-8"))
            except (ConnectionResetError, RuntimeError):
                pass


async def _refuse(ws, message: str, code: int) -> None:
    await ws.send_json(P.error_message(message))
    await ws.close(code=code, message=P.close_reason(message).encode("utf-8"))


def _kind(code: int) -> str:
    return {P.UNSUPPORTED: "unsupported", P.TOO_BIG: "too_big", P.INTERNAL: "internal"}.get(code, "protocol")


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response(P.error_message(message), status=status)


def _transcribe_bytes(decoder, body: bytes, utt_id: str) -> dict:
    """Decode one uploaded file offline (runs on a worker thread) -> the row `ds2cli decode --json` prints."""
    fd, path = tempfile.mkstemp(prefix="ds2cli-upload-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(body)
        done, errors = decoder.decode_files([path])
        if errors:
            raise DS2Error(errors[0][1].replace(path, "uploaded audio"))
        return {**done[0].as_row(), "id": utt_id}
    finally:
        os.unlink(path)


# -- running it ---------------------------------------------------------------------------------
async def serve(server: Server, announce=None) -> None:
    """Listen until SIGTERM or SIGINT; then stop accepting, drain the streams in flight, return."""
    cfg = server.config
    runner = web.AppRunner(server.app(), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, cfg.host, cfg.port)
    await site.start()
    port = runner.addresses[0][1]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    (announce or _announce)(cfg.host, port)
    await stop.wait()
    for sig in (signal.SIGTERM, signal.SIGINT):  # a repeated signal must not kill the drain or the exit
        loop.remove_signal_handler(sig)
        signal.signal(sig, signal.SIG_IGN)
    await site.stop()  # no new connections
    await server.drain()
    await runner.cleanup()


def _announce(host: str, port: int) -> None:
    print(f"ds2cli serve: listening on http://{host}:{port} (streams: ws://{host}:{port}{P.STREAM_PATH})",
          file=sys.stderr, flush=True)


def run(server: Server) -> None:
    asyncio.run(serve(server))


def config_from(**kwargs) -> ServeConfig:
    """ServeConfig from keyword options; None means the default."""
    return dataclasses.replace(ServeConfig(), **{k: v for k, v in kwargs.items() if v is not None})
