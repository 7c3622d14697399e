"""Per-request state, passed down explicitly (never kept in module globals)."""
import threading
import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, NamedTuple, Optional

from api.errors import RequestTimeoutError
from api.settings import Settings

# Smallest time worth spending on an upstream call near the deadline.
_MIN_CALL_SECONDS = 0.05


# Upstream answers that are failures whatever the provider, and their code.
_FAILED_STATUS_CODES = {401: "authorization error", 403: "authorization error",
                        429: "too many requests"}
# Per-call detail kept per request (the counters keep counting past it).
_MAX_RECORDED_CALLS = 100


class UpstreamFailure(NamedTuple):
    provider: str
    status: Optional[int]   # None: no HTTP answer (timeout, connection)
    seconds: float
    code: str


class RequestStats:
    """What one request cost upstream; filled by the HTTP layer and the cache,
    read by whoever reports on the request (api/telemetry.py). Safe across
    the engine's threads."""

    def __init__(self):
        self._lock = threading.Lock()
        self.upstream_calls = 0
        self.upstream_seconds = 0.0
        self.cache_hits = 0
        self.call_seconds = []
        self.failures = []

    def upstream(self, seconds, provider=None, status=None, code=None):
        """One upstream call: its time, and its HTTP status or the error code
        of a call that got no answer."""
        if code is None and status is not None:
            code = _FAILED_STATUS_CODES.get(status)
            if code is None and status >= 500:
                code = "service unavailable"
        with self._lock:
            self.upstream_calls += 1
            self.upstream_seconds += seconds
            if len(self.call_seconds) < _MAX_RECORDED_CALLS:
                self.call_seconds.append(seconds)
                if code is not None:
                    self.failures.append(UpstreamFailure(provider, status, seconds, code))

    def cache_hit(self, count=1):
        with self._lock:
            self.cache_hits += count


@dataclass(frozen=True)
class RequestContext:
    """Who is asking (claims), under which settings, until when."""

    provider: str
    settings: Settings
    claims: Mapping = field(default_factory=lambda: MappingProxyType({}), repr=False)
    entities_limit: int = 100
    deadline: float = field(default_factory=lambda: time.monotonic() + 20.0)
    stats: RequestStats = field(default_factory=RequestStats, repr=False, compare=False)

    @property
    def key(self):
        """The provider credential from the JWT (`key` claim), if any."""
        return self.claims.get("key")

    def remaining(self):
        return self.deadline - time.monotonic()

    def late_error(self):
        """The error of work still running at the deadline (one text for all)."""
        return RequestTimeoutError(
            f"no answer from {self.provider} within the relay's "
            f"{self.settings.deadline:g} s deadline")

    def timeout(self):
        """Timeout for the next upstream call: per-call limit, within the deadline."""
        remaining = self.remaining()
        if remaining < _MIN_CALL_SECONDS:
            raise RequestTimeoutError(
                f"The relay's {self.settings.deadline:g} s deadline passed before "
                f"{self.provider} answered")
        return min(self.settings.http_timeout, remaining)
