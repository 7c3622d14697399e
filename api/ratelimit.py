"""Rate-limit state per (provider, credential), shared by every request.

A `RateGate` remembers what a provider said about one API key: closed after
a 429 or an exhausted quota until its reset, and a learned per-second pace.
Gates are keyed by provider + an HMAC of the `key` claim only (tokens that
differ in `iat` or module settings share one), kept in a bounded LRU, and
every duration read from a header is clamped to a finite maximum. A learned
pace is forgotten PACE_MEMORY seconds after the last sign of it, so a key
whose plan was upgraded, or a one-off 429, does not stay slow for the
container's life.

With RELAY_CACHE_TABLE set, closures and paces are also written to the
DynamoDB table, and each gate re-reads them at most every SHARED_REFRESH
seconds, so a 429 seen by one Lambda container stops the others too.

`api.http.request` calls `gate.wait(ctx, title)` before and
`gate.observe(response)` after each call; providers subclass `RateGate` to
read their own quota headers.
"""
import math
import threading
import time
from collections import OrderedDict

from api.cache import keys
from api.errors import TooManyRequestsError

MAX_CLOSED = 3600.0       # longest a key stays closed, whatever a header says
DEFAULT_CLOSED = 60.0     # a 429 without a usable Retry-After
PACE_MEMORY = 300.0       # a learned pace lapses after this long without a sign
MAX_GATES = 4096          # gates kept per container (least recently used out)
SHARED_REFRESH = 1.0      # seconds between two reads of a gate's shared state

_gates = OrderedDict()
_lock = threading.Lock()


def seconds(value, default=None, maximum=MAX_CLOSED):
    """A header's number of seconds in [0, maximum]; `default` when unreadable.

    `inf` or a huge number becomes `maximum`, `nan` or text `default`.
    """
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError):
        return default
    if math.isnan(number):
        return default
    return min(max(number, 0.0), maximum)


def retry_after(response, default=None):
    """Seconds from a `Retry-After` header (delta-seconds form), clamped."""
    return seconds(response.headers.get("Retry-After"), default)


class RateGate:
    """Rate-limit state of one (provider, credential) pair.

    `block(seconds)` closes the gate; `wait()` then either sleeps out a short
    closure that fits in the request's deadline or fails fast with
    `too many requests`. `pace(limit)` spaces calls `margin / limit` seconds
    apart; a call whose slot falls after the deadline fails fast too.
    """

    max_sleep = 1.5
    margin = 1.1

    def __init__(self, partition=""):
        self.partition = partition   # shared-tier key; holds no credential
        self.shared = None           # the DynamoDB tier, when configured
        self._until = 0.0            # monotonic end of a closure
        self._message = ""
        self._per_second = None      # learned requests/second
        self._paced_at = 0.0         # monotonic time of the last sign of the pace
        self._next = 0.0             # monotonic time of the next free slot
        self._synced = -math.inf     # monotonic time of the last shared read
        self._lock = threading.Lock()

    @classmethod
    def for_credential(cls, provider, ctx):
        """The gate of this request's credential for `provider`."""
        from api import cache

        key = (provider, keys.credential_tag(ctx, provider))
        with _lock:
            gate = _gates.get(key)
            if gate is None or type(gate) is not cls:
                gate = _gates[key] = cls(keys.rate_partition(*key))
            _gates.move_to_end(key)
            while len(_gates) > MAX_GATES:
                _gates.popitem(last=False)
        gate.shared = cache.shared(ctx)
        return gate

    # --- state ----------------------------------------------------------------
    @property
    def per_second(self):
        """The learned per-second limit, None once PACE_MEMORY has passed."""
        if self._per_second and time.monotonic() - self._paced_at > PACE_MEMORY:
            self._per_second = None
        return self._per_second

    def block(self, duration, message, share=True):
        duration = seconds(duration, DEFAULT_CLOSED)
        with self._lock:
            until = time.monotonic() + duration
            if until <= self._until:
                return
            self._until = until
            self._message = message
        if share and self.shared is not None:
            self.shared.put_rate(self.partition, closed_for=duration, message=message)

    def pace(self, limit, pause=0.0, share=True, age=0.0):
        """Space calls for `limit` requests per second, the next one `pause`
        away; `age` says how long ago the pace was learned (shared state)."""
        pause = seconds(pause, 0.0, maximum=self.max_sleep)
        with self._lock:
            changed = limit != self._per_second
            now = time.monotonic()
            self._per_second = limit
            self._paced_at = now - age
            self._next = max(self._next, now + pause)
        if share and changed and self.shared is not None:
            self.shared.put_rate(self.partition, per_second=limit)

    def blocked_for(self):
        return max(self._until - time.monotonic(), 0.0)

    def _sync(self, ctx):
        """Adopt a closure or pace another container wrote to the shared tier."""
        now = time.monotonic()
        if self.shared is None or now - self._synced < SHARED_REFRESH:
            return
        self._synced = now
        state = self.shared.get_rate(ctx, self.partition)
        if not state:
            return
        if state.get("closed_for"):
            self.block(state["closed_for"], state.get("message", ""), share=False)
        limit, age = state.get("per_second"), state.get("pace_age", math.inf)
        if limit and age < PACE_MEMORY and limit != self._per_second:
            self.pace(limit, share=False, age=age)

    # --- the hooks api.http.request calls ---------------------------------------
    def wait(self, ctx, title):
        self._sync(ctx)
        pause = self.blocked_for()
        if pause:
            if pause <= self.max_sleep and pause < ctx.remaining() - 0.1:
                time.sleep(pause)
            else:
                raise TooManyRequestsError(
                    self._message or f"{title} rate limit reached; retry in {pause:.0f} s")
        limit = self.per_second
        if not limit:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            if slot - now > ctx.remaining() - 0.2:
                raise TooManyRequestsError(
                    f"{title} allows this API key {limit} request(s) per second; no "
                    "slot is left within the relay's deadline")
            self._next = slot + self.margin / limit
        if slot > now:
            time.sleep(slot - now)

    def observe(self, response):
        """Subclasses read quota headers; here a 429 closes the gate."""
        if response.status_code == 429:
            self.block(retry_after(response, DEFAULT_CLOSED), "")


def reset():
    """Forget every gate (tests, emulator restarts)."""
    with _lock:
        _gates.clear()
