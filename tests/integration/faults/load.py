"""A steady request load (N requests per second for a while) and what came back, for the fault suite."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class LoadResult:
    """Outcome of every request of a load: status (or the exception's name) and latency, in send order."""

    sent_at: list[float] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    bodies: dict[str, str] = field(default_factory=dict)  # first body (or error) seen for each outcome but 200
    throttled: list[float] = field(default_factory=list)  # when a throttled attempt was sent (then retried)

    def counts(self) -> Counter[str]:
        """How many requests ended with each outcome (``200``, ``503``, ``ConnectError``...)."""
        return Counter(self.outcomes)

    def failures(self) -> list[tuple[float, str]]:
        """(seconds after the start, outcome) of every request that did not answer 200."""
        start = self.sent_at[0] if self.sent_at else 0.0
        return [(round(t - start, 2), o) for t, o in zip(self.sent_at, self.outcomes, strict=True) if o != "200"]

    def server_errors(self, since: float = float("-inf")) -> int:
        """Requests sent at or after ``since`` (``time.monotonic()``) that answered 5xx or got no answer at all."""
        return sum(
            1
            for t, o in zip(self.sent_at, self.outcomes, strict=True)
            if t >= since and (not o.isdigit() or o.startswith("5"))
        )

    def p99(self) -> float:
        """99th percentile latency in seconds."""
        ordered = sorted(self.latencies)
        return ordered[int(0.99 * (len(ordered) - 1))] if ordered else 0.0

    def summary(self) -> str:
        """One line: count, outcomes, p99 and max latency."""
        worst = max(self.latencies, default=0.0)
        line = f"{len(self.outcomes)} requests: {dict(self.counts())}, p99 {self.p99():.2f} s, max {worst:.2f} s"
        if self.throttled:
            start = self.sent_at[0] if self.sent_at else 0.0
            first, last = min(self.throttled) - start, max(self.throttled) - start
            line += f"\n    {len(self.throttled)} throttled attempts retried, from {first:.2f} s to {last:.2f} s"
        spans: dict[str, list[float]] = {}
        for t, outcome in self.failures():
            spans.setdefault(outcome, []).append(t)
        for outcome, times in spans.items():
            line += f"\n    {outcome} from {min(times)} s to {max(times)} s: {self.bodies.get(outcome, '')[:160]}"
        return line


def is_throttle(status: int, body: str) -> bool:
    """A throttled invocation: 429 (AWS), or LocalStack's Function URL's 500 with ``TooManyRequestsException``."""
    return status == 429 or (status == 500 and "TooManyRequestsException" in body)


class Load:
    """POST ``json`` to ``url`` ``rate`` times per second from a thread pool until stopped.

    With ``throttle_retries`` a throttled request is sent again after a back-off (0.2 s, doubling), as AWS's
    SDKs and well-behaved clients of a Lambda do; each throttled attempt is recorded, the request's outcome
    is its last answer.
    """

    def __init__(
        self,
        url: str,
        json: Any,
        rate: float,
        headers: dict[str, str] | None = None,
        timeout: float = 60.0,
        workers: int = 16,
        throttle_retries: int = 0,
    ) -> None:
        self.url, self.json, self.rate, self.headers, self.timeout = url, json, rate, headers or {}, timeout
        self.throttle_retries = throttle_retries
        self.result = LoadResult()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(workers)
        self._threads: list[threading.Thread] = []
        self._pacer = threading.Thread(target=self._pace, daemon=True)

    def __enter__(self) -> Load:
        self._pacer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._pacer.join()
        for t in self._threads:
            t.join(self.timeout + 5)

    def _pace(self) -> None:
        interval, next_at = 1.0 / self.rate, time.monotonic()
        with httpx.Client(timeout=self.timeout, headers=self.headers) as client:
            while not self._stop.is_set():
                self._slots.acquire()
                thread = threading.Thread(target=self._one, args=(client,), daemon=True)
                self._threads.append(thread)
                thread.start()
                next_at += interval
                time.sleep(max(0.0, next_at - time.monotonic()))
            for t in self._threads:
                t.join(self.timeout + 5)

    def _one(self, client: httpx.Client) -> None:
        t0 = time.monotonic()
        body = ""
        throttled: list[float] = []
        try:
            for attempt in range(self.throttle_retries + 1):
                sent = time.monotonic()
                response = client.post(self.url, json=self.json)
                outcome, body = str(response.status_code), response.text[:300]
                if attempt == self.throttle_retries or not is_throttle(response.status_code, body):
                    break
                throttled.append(sent)
                time.sleep(0.2 * 2**attempt)
        except httpx.HTTPError as e:
            outcome, body = type(e).__name__, str(e)[:300]
        finally:
            self._slots.release()
        with self._lock:
            if outcome != "200":
                self.result.bodies.setdefault(outcome, body)
            self.result.throttled.extend(throttled)
            self.result.sent_at.append(t0)
            self.result.outcomes.append(outcome)
            self.result.latencies.append(time.monotonic() - t0)
