"""Outbound HTTP shared by every provider client.

One `requests.Session` per provider lives for the life of the (warm) Lambda
container, so TLS connections are reused across invocations. Every call gets
a timeout from the request context, a User-Agent, and a transport-error
mapping to the relay's error codes. `RateGate` remembers a provider's 429s
and quota headers per credential so that a limited key stops calling early.
"""
import threading
import time

from api.errors import (RequestTimeoutError, ServiceUnavailableError,
                        TooManyRequestsError, UnexpectedResponseError)
from api.version import VERSION

USER_AGENT = f"tr-intel-relay/{VERSION} (+Cisco XDR relay)"

_sessions = {}
_gates = {}
_lock = threading.Lock()


def session(name, pool_size=64):
    """The shared session of provider `name`, created on first use."""
    with _lock:
        existing = _sessions.get(name)
        if existing is not None:
            return existing
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        # Retry only what is safe and cheap: failed connects, and one retry of
        # an idempotent GET answered 502/503/504. 429 is handled by RateGate.
        retry = Retry(total=2, connect=2, read=False, status=1, other=0,
                      status_forcelist=(502, 503, 504),
                      allowed_methods=frozenset({"GET", "HEAD"}),
                      backoff_factor=0.1, raise_on_status=False,
                      respect_retry_after_header=False)
        adapter = HTTPAdapter(max_retries=retry, pool_connections=4,
                              pool_maxsize=pool_size)
        created = requests.Session()
        created.mount("https://", adapter)
        created.mount("http://", adapter)
        created.headers["User-Agent"] = USER_AGENT
        _sessions[name] = created
        return created


def request(ctx, title, method, url, *, session_name=None, gate=None, **kwargs):
    """Send one request for provider `title` and return the response.

    Raises RequestTimeoutError / ServiceUnavailableError on transport failure
    and TooManyRequestsError when `gate` says the credential is rate limited.
    """
    import requests

    if gate is not None:
        gate.wait(ctx, title)
    kwargs.setdefault("timeout", ctx.timeout())
    started = time.monotonic()
    status = code = None
    try:
        response = session(session_name or ctx.provider).request(method, url, **kwargs)
        status = response.status_code
    except requests.Timeout:
        code = RequestTimeoutError.code
        raise RequestTimeoutError(f"{title} did not answer in time") from None
    except requests.RequestException as error:
        code = ServiceUnavailableError.code
        raise ServiceUnavailableError(
            f"Unable to reach {title}: {type(error).__name__}") from None
    finally:
        ctx.stats.upstream(time.monotonic() - started, title, status, code)
    if gate is not None:
        gate.observe(response)
    return response


def json_body(response, title):
    """The decoded JSON body of `response`, or an `unexpected response` error."""
    try:
        return response.json()
    except ValueError:
        raise UnexpectedResponseError(
            f"{title} answered HTTP {response.status_code} with a body that is "
            "not JSON") from None


def retry_after(response, default=None):
    """Seconds from a `Retry-After` header (delta-seconds form), or default."""
    value = response.headers.get("Retry-After")
    try:
        return max(float(value), 0.0)
    except (TypeError, ValueError):
        return default


class RateGate:
    """Rate-limit state of one (provider, credential) pair.

    `block(seconds)` closes the gate; `wait()` then either sleeps out a short
    closure that fits in the request's deadline or fails fast with
    `too many requests`, so a limited key stops hammering the provider.
    """

    max_sleep = 1.5

    def __init__(self):
        self._until = 0.0
        self._message = ""
        self._lock = threading.Lock()

    @classmethod
    def for_credential(cls, provider, ctx):
        key = (provider, ctx.credential_id)
        with _lock:
            gate = _gates.get(key)
            if gate is None:
                gate = _gates[key] = cls()
            return gate

    def block(self, seconds, message):
        with self._lock:
            until = time.monotonic() + seconds
            if until > self._until:
                self._until = until
                self._message = message

    def blocked_for(self):
        return max(self._until - time.monotonic(), 0.0)

    def wait(self, ctx, title):
        pause = self.blocked_for()
        if not pause:
            return
        if pause <= self.max_sleep and pause < ctx.remaining() - 0.1:
            time.sleep(pause)
            return
        raise TooManyRequestsError(
            self._message or f"{title} rate limit reached; retry in {pause:.0f} s")

    def observe(self, response):
        """Hook for subclasses that read quota headers; 429 closes the gate."""
        if response.status_code == 429:
            self.block(retry_after(response, 60.0), "")


def reset_state():
    """Forget sessions and rate-limit state (tests, emulator restarts)."""
    with _lock:
        for item in _sessions.values():
            item.close()
        _sessions.clear()
        _gates.clear()
