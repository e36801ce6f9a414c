"""Client-side pacing for a rate-limited API: the budget its headers announce, and at most N
requests in flight per source.

Datadog answers every rate-limited request with (Datadog API reference, "Rate Limits"):

=========================  ==================================================================
``X-RateLimit-Limit``      requests allowed in a period
``X-RateLimit-Period``     length of a period in seconds (calendar aligned)
``X-RateLimit-Remaining``  requests left in the current period
``X-RateLimit-Reset``      seconds until the current period ends
=========================  ==================================================================

:class:`RateBudget` keeps that budget between requests: a request goes at once while the budget
lasts; once it is used up, the request is booked into the next period that has room and waits
for it (``Reset`` seconds, then ``Period`` more per full period), so no request is sent that
the server is known to refuse. Requests in flight when an answer arrives are subtracted from
the ``Remaining`` it announces (they may not be counted yet): the budget errs on the safe side.
The clock is injectable, so the arithmetic is tested without sleeping.

:class:`RequestSlots` bounds the requests in flight per source, across every analysis of the
process (one ``asyncio.Semaphore`` per event loop: a notebook's private loop gets its own).
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass

LIMIT = "X-RateLimit-Limit"
PERIOD = "X-RateLimit-Period"
REMAINING = "X-RateLimit-Remaining"
RESET = "X-RateLimit-Reset"


def _number(headers: Mapping[str, str], name: str) -> float | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


@dataclass(frozen=True)
class Booking:
    """What :meth:`RateBudget.book` decided: wait ``wait`` seconds, then send."""

    wait: float
    limit: int | None
    period: float | None


class RateBudget:
    """The rate limit's budget as the server's headers announced it (see module doc)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.remaining: int | None = None
        """Requests left in the current period (``None``: unknown, nothing limits)."""
        self.reset_at: float | None = None
        """Clock time the current period ends."""
        self.limit: int | None = None
        self.period: float | None = None
        self._booked: dict[int, int] = {}
        """Requests booked into the ``k``-th period after the current one (k >= 1)."""
        self.in_flight = 0
        self.learned = False
        """Has any request finished? Until then the budget is unknown, and a source sends
        one request alone to learn it (:meth:`RequestSlots.first_answer`)."""

    def _roll(self, now: float) -> None:
        """Move to the period ``now`` falls in, carrying the bookings along."""
        while self.reset_at is not None and now >= self.reset_at:
            booked = self._booked.pop(1, 0)
            self._booked = {k - 1: n for k, n in self._booked.items()}
            self.remaining = None if self.limit is None else max(0, self.limit - booked)
            self.reset_at = self.reset_at + self.period if self.period else None
            if self.reset_at is None:
                # Without a period the next reset is unknown: so is the budget, until the
                # next answer announces it.
                self.remaining = None
                self._booked.clear()

    def book(self) -> Booking:
        """Book one request: how long it must wait before it is sent."""
        with self._lock:
            now = self._clock()
            self._roll(now)
            self.in_flight += 1
            if self.remaining is None or self.remaining > 0:
                if self.remaining is not None:
                    self.remaining -= 1
                return Booking(0.0, self.limit, self.period)
            assert self.reset_at is not None  # a known, used-up budget has a known end
            k = 1
            while True:
                used = self._booked.get(k, 0)
                if self.limit is None or used < self.limit or not self.period:
                    self._booked[k] = used + 1
                    start = self.reset_at + (k - 1) * (self.period or 0.0)
                    return Booking(max(0.0, start - now), self.limit, self.period)
                k += 1

    def done(self) -> None:
        """A booked request is over: answered, failed, or never sent."""
        with self._lock:
            self.in_flight = max(0, self.in_flight - 1)
            self.learned = True

    def observe(self, headers: Mapping[str, str]) -> None:
        """An answer arrived (any status, 429 included) to a booked request still counted
        in flight: take the budget it announces."""
        with self._lock:
            remaining, reset = _number(headers, REMAINING), _number(headers, RESET)
            limit, period = _number(headers, LIMIT), _number(headers, PERIOD)
            if limit is not None:
                self.limit = int(limit)
            if period is not None and period > 0:
                self.period = period
            if remaining is None or reset is None:
                return
            now = self._clock()
            # Requests sent after this one may already be counted by the server, or not.
            self.remaining = max(0, int(remaining) - max(0, self.in_flight - 1))
            # Bookings into later periods stay: they were counted against this same limit.
            self.reset_at = now + reset


class RequestSlots:
    """At most ``limit`` requests in flight per source (one semaphore per event loop)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {limit}")
        self.limit = limit
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
        self._by_loop = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

        self._learned: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Event]
        self._learned = weakref.WeakKeyDictionary()
        self.probing = False
        """A first request is out to learn the rate limit; the others wait for its answer."""

    def semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        with self._lock:
            found = self._by_loop.get(loop)
            if found is None:
                found = self._by_loop[loop] = asyncio.Semaphore(self.limit)
            return found

    def first_answer(self) -> asyncio.Event:
        """Set once the first request of the source has finished (on every loop)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            found = self._learned.get(loop)
            if found is None:
                found = self._learned[loop] = asyncio.Event()
            return found

    def answered(self) -> None:
        """The first request finished: release every loop's waiters."""
        with self._lock:
            self.probing = False
            events = list(self._learned.items())
        for loop, event in events:
            if loop.is_closed():
                continue
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if loop is running:
                event.set()
            else:
                loop.call_soon_threadsafe(event.set)
