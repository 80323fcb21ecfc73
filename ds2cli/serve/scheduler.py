"""Batch Dispatch (DS2 section 7): one scheduler owns the network. Whenever it is free it takes the
pending audio of every stream that has some (up to `max_batch` streams, oldest waiting first,
after waiting at most `max_wait_ms` for more), runs ONE batched `model.step` on its own thread,
and hands each stream its new emission frames. Each stream's search (`on_emissions`, `finish`)
then runs on a small thread pool, in order per stream, while the network already works on the
next batch.

Every queue is bounded: a stream holds at most `max_pending_seconds` of unprocessed audio (the
reader waits, which pushes back on the client through TCP) and at most `MAX_SEARCHES` searches
in flight (a stream behind on its search is left out of the next batch)."""
from __future__ import annotations

import asyncio
import itertools
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Awaitable, Callable

import numpy as np

log = logging.getLogger("ds2cli.serve")
MAX_SEARCHES = 2  # searches in flight per stream


class Stream:
    """One client stream inside the scheduler."""

    def __init__(self, sid: int, recognizer, deliver: Callable[[list[dict]], Awaitable[None]],
                 client_rate: int):
        self.id, self.recognizer, self.deliver, self.client_rate = sid, recognizer, deliver, client_rate
        self.pending: list[np.ndarray] = []  # model-rate audio not yet through the network
        self.pending_samples = 0
        self.waiting_since = 0.0  # arrival of the oldest pending audio
        self.newest_arrival = 0.0  # arrival of the newest pending audio
        self.client_samples = 0  # client samples that reached `pending`
        self.ending = False  # end of stream asked; one final step is due
        self.stepped_final = False
        self.searching = 0
        self.search_tail: asyncio.Future | None = None
        self.space = asyncio.Event()
        self.space.set()
        self.finished: asyncio.Future = asyncio.get_running_loop().create_future()
        self.end_time = 0.0
        self.closed = False  # dropped: the client went away
        self.segments = 0

    def ready(self) -> bool:
        return (not self.closed and not self.stepped_final and self.searching < MAX_SEARCHES
                and (self.pending_samples > 0 or self.ending))


class BatchDispatcher:
    def __init__(self, model, *, max_batch: int = 64, max_wait_ms: float = 0.0,
                 max_pending_seconds: float = 2.0, search_threads: int = 2, metrics=None):
        self.model, self.max_batch, self.max_wait = model, max_batch, max_wait_ms / 1000
        self.max_pending = int(max_pending_seconds * model.sample_rate)
        self.metrics = metrics
        self._net = ThreadPoolExecutor(1, thread_name_prefix="ds2-net")
        self._search = ThreadPoolExecutor(search_threads, thread_name_prefix="ds2-search")
        self._streams: dict[int, Stream] = {}
        self._ids = itertools.count(1)
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.steps = 0
        self._pending_max = 0

    # -- what the connections call -------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def open(self, recognizer, deliver, client_rate: int) -> Stream:
        s = Stream(next(self._ids), recognizer, deliver, client_rate)
        self._streams[s.id] = s
        return s

    async def feed(self, s: Stream, samples: np.ndarray, client_samples: int) -> None:
        """Queue audio of stream `s`; waits while the stream already holds max_pending samples."""
        while s.pending_samples >= self.max_pending and not s.closed:
            s.space.clear()
            await s.space.wait()
        if s.closed or s.ending:
            return
        now = time.perf_counter()
        if not s.pending:
            s.waiting_since = now
        s.newest_arrival = now
        s.pending.append(samples)
        s.pending_samples += len(samples)
        s.client_samples += client_samples
        if self.metrics is not None and s.pending_samples > self._pending_max:
            self._pending_max = s.pending_samples
            self.metrics.pending_max.set(s.pending_samples / self.model.sample_rate)
        self._wake.set()

    async def end(self, s: Stream, tail: np.ndarray | None = None) -> None:
        """End of stream: the last step (final=True) and the last search; returns once the
        stream's finals were delivered."""
        if not s.ending and not s.closed:
            if tail is not None and len(tail):
                await self.feed(s, tail, 0)
            s.ending, s.end_time = True, time.perf_counter()
            if not s.pending:
                s.waiting_since = s.end_time
            self._wake.set()
        await asyncio.shield(s.finished)

    def drop(self, s: Stream) -> None:
        """The client went away: forget the stream (searches in flight finish into the void)."""
        s.closed = True
        s.space.set()
        self._streams.pop(s.id, None)
        if not s.finished.done():
            s.finished.set_result(False)

    @property
    def active(self) -> int:
        return len(self._streams)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._net.shutdown(wait=True)
        self._search.shutdown(wait=True)

    # -- the scheduler -------------------------------------------------------------------------
    def _ready(self) -> list[Stream]:
        return [s for s in self._streams.values() if s.ready()]

    async def _gather(self) -> list[Stream]:
        """Wait for work; with max_wait > 0, wait up to that long for a fuller batch."""
        while True:
            ready = self._ready()
            if ready:
                break
            self._wake.clear()
            await self._wake.wait()
        if self.max_wait > 0 and len(ready) < self.max_batch:
            deadline = time.perf_counter() + self.max_wait
            while len(ready) < self.max_batch and (left := deadline - time.perf_counter()) > 0:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), left)
                except asyncio.TimeoutError:
                    pass
                ready = self._ready()
        ready.sort(key=lambda s: s.waiting_since)
        return ready[: self.max_batch]

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            states, chunks, finals, arrivals, processed = [], [], [], [], []
            for s in batch:
                chunk = np.concatenate(s.pending) if len(s.pending) > 1 else (
                    s.pending[0] if s.pending else np.zeros(0, dtype=np.float32))
                s.pending, s.pending_samples = [], 0
                s.space.set()
                final = s.ending
                s.stepped_final = final
                s.searching += 1
                states.append(s.recognizer.state)
                chunks.append(chunk)
                finals.append(final)
                arrivals.append(s.end_time if final else s.newest_arrival)
                processed.append(round(s.client_samples / s.client_rate, 3))
            t0 = time.perf_counter()
            try:
                outs = await loop.run_in_executor(self._net, self.model.step, states, chunks, finals)
            except Exception as err:  # a failed step must not stop the server
                log.exception("network step failed")
                for s in batch:
                    s.searching -= 1
                    await self._fail(s, f"internal error in the network step ({type(err).__name__})")
                continue
            self.steps += 1
            if self.metrics is not None:
                self.metrics.step.observe(time.perf_counter() - t0)
                self.metrics.batch.observe(len(batch))
            for s, frames, final, arrival, done in zip(batch, outs, finals, arrivals, processed):
                self._after_step(s, frames, final, arrival, done)

    def _after_step(self, s: Stream, frames, final: bool, arrival: float, processed: float) -> None:
        loop = asyncio.get_running_loop()
        prev = s.search_tail

        async def search():
            nonlocal prev
            if prev is not None:
                await asyncio.shield(prev)
                prev = None  # no chain of finished tasks kept alive
            if s.closed:
                return
            t0 = time.perf_counter()
            try:
                events = await loop.run_in_executor(self._search, _search, s.recognizer, frames, final)
            except Exception as err:
                log.exception("search failed")
                await self._fail(s, f"internal error in the search ({type(err).__name__})")
                return
            finally:
                s.searching -= 1
                self._wake.set()
            if self.metrics is not None:
                now = time.perf_counter()
                self.metrics.search.observe(now - t0)
                (self.metrics.final_latency if final else self.metrics.partial_latency).observe(now - arrival)
            for e in events:
                if e.get("type") == "partial":
                    e["processed"] = processed
                elif e.get("type") == "final":
                    s.segments += 1
            if events and not s.closed:
                await s.deliver(events)
            if final:
                self._streams.pop(s.id, None)
                if not s.finished.done():
                    s.finished.set_result(True)

        s.search_tail = loop.create_task(search())

    async def _fail(self, s: Stream, message: str) -> None:
        if not s.closed:
            try:
                await s.deliver([{"type": "error", "message": message}])
            finally:
                self.drop(s)


def _search(recognizer, frames, final: bool) -> list[dict]:
    """Runs on the search pool: the stream's incremental search over its new frames (t, V).
    Every step answers with a partial (the current text, changed or not), so a client can see
    how far the server has got; the end of the stream adds the last final."""
    events = recognizer.on_emissions(frames)
    if final:
        return events + recognizer.finish(flushed=True)  # the batched step ran the flush
    if not any(e["type"] == "partial" for e in events):
        events.append({"type": "partial", "segment": recognizer.segment, "text": recognizer.partial})
    return events
