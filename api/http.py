"""Outbound HTTP shared by every provider client.

One `requests.Session` per provider lives for the life of the (warm) Lambda
container, so TLS connections are reused across invocations. Every call gets
a timeout from the request context, a User-Agent, and a transport-error
mapping to the relay's error codes. Rate-limit state lives in api/ratelimit.py;
`request()` calls a gate's `wait()` before and `observe()` after each call.
"""
import threading
import time

from api.errors import (RequestTimeoutError, ServiceUnavailableError,
                        UnexpectedResponseError)
from api.version import VERSION

USER_AGENT = f"tr-intel-relay/{VERSION} (+Cisco XDR relay)"

_sessions = {}
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
        # an idempotent GET answered 502/503/504. 429 is handled by the gate.
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


def reset_state():
    """Forget sessions (tests, emulator restarts)."""
    with _lock:
        for item in _sessions.values():
            item.close()
        _sessions.clear()
