"""Outbound HTTP shared by every provider client: the one place it happens.

urllib3 directly, not requests: a py-spy profile of warm observes showed
requests' per-call session machinery (request preparation, cookie jar,
environment merge, CA-bundle lookups) as the largest share of the relay's CPU
per upstream call, and urllib3 (what requests runs on; pure Python, on
Lambda as it is) lets the relay say exactly what happens on the wire.
Connection pools per provider and host live for the warm container, so
connections are reused across invocations.

What every call gets, whatever the provider:
- no redirect is followed: a 3xx is an `unexpected response`;
- no cookie is stored or sent (urllib3 keeps no cookie jar);
- at most RELAY_MAX_UPSTREAM_BYTES read from the wire and decoded (gzip
  included, read in chunks), else `unexpected response`;
- the whole call (connects and their retries, headers, body) ends by its
  per-call timeout and the request's deadline: a watchdog thread closes the
  socket of a call that runs late, so an upstream trickling bytes cannot
  hold a request;
- urllib3's own log lines lose URL query strings (a Pulsedive key travels
  there) and tracebacks, at every level.
"""
import heapq
import json as jsonlib
import logging
import re
import socket
import threading
import time
from types import SimpleNamespace
from urllib.parse import urlencode, urlsplit

from api.errors import (InvalidArgumentError, RelayError, RequestTimeoutError,
                        ServiceUnavailableError, UnexpectedResponseError)
from api.version import VERSION

USER_AGENT = f"tr-intel-relay/{VERSION} (+Cisco XDR relay)"
# Read size for upstream bodies; also bounds one gzip decompression step.
CHUNK = 256 * 1024
# Connect failures are retried this many times, only within the call's time.
CONNECT_RETRIES = 2
# GETs answered 502/503/504 are retried once.
STATUS_RETRIES = 1
_RETRY_STATUSES = (502, 503, 504)
_BACKOFF = 0.1
# Seconds a call may run past the request's deadline (see request()).
DEADLINE_GRACE = 0.1

# Connection pools by (provider, scheme, host:port, TLS verification).
MAX_POOLS = 64
MAX_CONNECTIONS = 64    # kept per pool; more may run at once, the rest are closed
_pools = {}
_urllib3 = None    # see _lib()
_lock = threading.Lock()
_current = threading.local()   # the upstream call running in this thread


class Response:
    """An upstream answer, fully read: status code, headers mapping, body."""

    __slots__ = ("status_code", "headers", "content", "path")

    def __init__(self, status_code, headers, content, path=""):
        self.status_code = status_code
        self.headers = headers      # case-insensitive mapping
        self.content = content      # bytes, decoded from gzip/deflate
        self.path = path            # URL path, no query string

    @property
    def text(self):
        return self.content.decode("utf-8", "replace")

    def json(self):
        """The decoded JSON body; ValueError when it is not readable JSON."""
        try:
            return jsonlib.loads(self.content)
        except RecursionError:  # nested deeper than the interpreter allows
            raise ValueError("JSON nested too deeply") from None


def _lib():
    """urllib3's parts the relay uses, imported once under a lock: the first
    calls come from many threads at once, and concurrent first imports of
    one package can see it half initialized."""
    global _urllib3
    if _urllib3 is None:
        with _lock:
            if _urllib3 is None:
                _urllib3 = _load()
    return _urllib3


def _load():
    import certifi    # the CA bundle requests used: the same here and on Lambda
    import urllib3
    from urllib3 import exceptions
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    _quiet_urllib3_logs()
    urllib3.disable_warnings(exceptions.InsecureRequestWarning)   # MISP_VERIFY_TLS=0

    class Watched:
        # Hands the connection to the watchdog just before waiting for the answer.
        def getresponse(self, *args, **kwargs):
            call = getattr(_current, "call", None)
            if call is not None:
                call.attach(self)
            return super().getresponse(*args, **kwargs)

    class Plain(Watched, HTTPConnection):
        pass

    class Tls(Watched, HTTPSConnection):
        pass

    class PlainPool(HTTPConnectionPool):
        ConnectionCls = Plain

    class TlsPool(HTTPSConnectionPool):
        ConnectionCls = Tls

    return SimpleNamespace(pools={"http": PlainPool, "https": TlsPool}, ca=certifi.where(),
                           Timeout=urllib3.util.Timeout, errors=exceptions)


def pool(name, url, verify=True):
    """The connection pool provider `name` uses for `url` (one per host)."""
    return _pool(name, urlsplit(url), verify)


def _pool(name, parts, verify):
    """The connection pool of provider `name` for this scheme, host and TLS."""
    key = (name, parts.scheme, parts.netloc, verify)
    pool = _pools.get(key)
    if pool is not None:
        return pool
    classes = _lib().pools
    if parts.scheme not in classes or not parts.hostname:
        raise ValueError("not an http(s) URL")
    with _lock:
        pool = _pools.get(key)
        if pool is None:
            if len(_pools) >= MAX_POOLS:   # URLs come from settings: rarely reached
                _close_pools()
            pool = _pools[key] = classes[parts.scheme](
                parts.hostname, parts.port, maxsize=MAX_CONNECTIONS, block=False,
                **_tls(verify, parts))
        return pool


def _close_pools():
    for pool in _pools.values():
        pool.close()
    _pools.clear()


_QUERY = re.compile(r"\?[^\s'\"<>)]*")


class _NoQueryStrings(logging.Filter):
    """Drops query strings and tracebacks from urllib3's log records."""

    def filter(self, record):
        record.msg = _QUERY.sub("?[query hidden]", record.getMessage())
        record.args = None
        record.exc_info = record.exc_text = record.stack_info = None
        return True


def _quiet_urllib3_logs():
    scrub = _NoQueryStrings()
    loggers = logging.root.manager.loggerDict
    for name in list(loggers):
        logger = loggers[name]
        if ((name == "urllib3" or name.startswith("urllib3."))
                and isinstance(logger, logging.Logger)
                and not any(isinstance(f, _NoQueryStrings) for f in logger.filters)):
            logger.addFilter(scrub)


class _Call:
    """One upstream call's end time and, once sent, its connection."""

    __slots__ = ("end", "by_deadline", "conn", "expired", "done")

    def __init__(self, end, by_deadline):
        self.end = end
        self.by_deadline = by_deadline      # ends with the request, not its own limit
        self.conn = None
        self.expired = False
        self.done = False

    def attach(self, conn):
        with _watchdog.lock:
            self.conn = conn
            if self.expired:
                _shut(conn)

    def expire(self):   # called by the watchdog, under its lock
        if not self.done:
            self.expired = True
            if self.conn is not None:
                _shut(self.conn)

    def finish(self):
        with _watchdog.lock:
            self.done = True


def _shut(conn):
    sock = getattr(conn, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked on it
        except OSError:
            pass


class _Watchdog:
    """One thread per process that ends upstream calls past their end time."""

    def __init__(self):
        self.lock = threading.Lock()
        self._wake = threading.Condition(self.lock)
        self._heap = []
        self._count = 0
        self._thread = None

    def watch(self, call):
        with self.lock:
            self._count += 1
            earliest = not self._heap or call.end < self._heap[0][0]
            heapq.heappush(self._heap, (call.end, self._count, call))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="relay-http-watchdog")
                self._thread.start()
            elif earliest:
                self._wake.notify()

    def _run(self):
        with self.lock:
            while True:
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    heapq.heappop(self._heap)[2].expire()
                self._wake.wait(self._heap[0][0] - now if self._heap else None)


_watchdog = _Watchdog()


def max_upstream_bytes(ctx):
    """RELAY_MAX_UPSTREAM_BYTES: cap on one answer, on the wire and decoded."""
    return ctx.settings.get_int("RELAY_MAX_UPSTREAM_BYTES", 8 * 1024 * 1024)


def request(ctx, title, method, url, *, session_name=None, gate=None, params=None,
            data=None, json=None, headers=None, verify=True, timeout=None):
    """Send one request for provider `title` and return its `Response`.

    `params` go into the query string, `data` is sent form-encoded, `json`
    as JSON; `verify` is a CA bundle path or a bool (TLS verification).
    Raises RequestTimeoutError / ServiceUnavailableError on transport
    failure, UnexpectedResponseError for a redirect or an oversized answer,
    and TooManyRequestsError when `gate` says the credential is rate limited.
    """
    if gate is not None:
        gate.wait(ctx, title)
    started = time.monotonic()
    ctx.timeout()   # raises once the deadline has passed
    limit = min(ctx.settings.http_timeout, timeout or ctx.settings.http_timeout)
    # Just past the deadline: the engine reports a late call first, with all others.
    by_deadline = started + limit > ctx.deadline + DEADLINE_GRACE
    call = _Call(min(started + limit, ctx.deadline + DEADLINE_GRACE), by_deadline)
    status = code = None
    try:
        response = _send(ctx, call, title, method, url, session_name or ctx.provider,
                         params, data, json, headers, verify)
        status = response.status_code
        if 300 <= status < 400:
            code = UnexpectedResponseError.code
    except RelayError as error:
        code = error.code
        raise
    finally:
        call.finish()
        _current.call = None
        ctx.stats.upstream(time.monotonic() - started, title, status, code)
    if gate is not None:
        gate.observe(response)
    if 300 <= response.status_code < 400:
        raise UnexpectedResponseError(
            f"{title} answered HTTP {response.status_code} (a redirect; the relay "
            "follows none)")
    return response


def _send(ctx, call, title, method, url, name, params, data, payload, headers, verify):
    lib = _lib()
    parts = urlsplit(url)
    target = parts.path or "/"
    query = parts.query
    if params:
        extra = urlencode([(k, v) for k, v in params.items() if v is not None], doseq=True)
        query = f"{query}&{extra}" if query else extra
    if query:
        target = f"{target}?{query}"
    sent = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate", "Accept": "*/*"}
    body = None
    if payload is not None:
        body = jsonlib.dumps(payload).encode()
        sent["Content-Type"] = "application/json"
    elif data is not None:
        body = urlencode(data).encode()
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    sent.update(headers or {})
    _watchdog.watch(call)
    _current.call = call
    connects = statuses = 0
    while True:
        left = call.end - time.monotonic()
        if left <= 0:
            raise _late(ctx, call, title)
        try:
            pool = _pool(name, parts, verify)
            answer = pool.urlopen(
                method, target, body=body, headers=sent, retries=False, redirect=False,
                timeout=lib.Timeout(connect=left, read=left), preload_content=False,
                assert_same_host=False)
            response = _read(ctx, call, title, answer, parts.path)
        except lib.errors.NewConnectionError as error:
            if call.expired:
                raise _late(ctx, call, title) from None
            connects += 1
            if connects > CONNECT_RETRIES or not _pause(call, connects):
                raise ServiceUnavailableError(
                    f"Unable to reach {title}: {type(error).__name__}") from None
            continue
        except lib.errors.DecodeError:
            raise UnexpectedResponseError(
                f"{title} answered a body that does not decompress") from None
        except (lib.errors.HTTPError, OSError) as error:
            if call.expired or _timed_out(error):
                raise _late(ctx, call, title) from None
            raise ServiceUnavailableError(
                f"Unable to reach {title}: {type(error).__name__}") from None
        except ValueError:   # a CR/LF in a header value, an unusable URL
            raise InvalidArgumentError(
                f"The relay could not build a valid request to {title} (an invalid "
                "character in its URL or headers)") from None
        if (response.status_code in _RETRY_STATUSES and method in ("GET", "HEAD")
                and statuses < STATUS_RETRIES and _pause(call, 1)):
            statuses += 1
            continue
        return response


def _tls(verify, parts):
    if parts.scheme != "https":
        return {}
    if isinstance(verify, str):
        return {"cert_reqs": "CERT_REQUIRED", "ca_certs": verify}
    if not verify:
        return {"cert_reqs": "CERT_NONE", "assert_hostname": False}
    return {"cert_reqs": "CERT_REQUIRED", "ca_certs": _lib().ca}


def _timed_out(error):
    timeouts = (_lib().errors.TimeoutError, socket.timeout)
    return isinstance(error, timeouts) or isinstance(getattr(error, "reason", None), timeouts)


def _late(ctx, call, title):
    if call.by_deadline:
        return ctx.late_error()     # the engine's words: one error for all late calls
    return RequestTimeoutError(f"{title} did not answer in time")


def _pause(call, attempt):
    """Sleep before retry `attempt` when the call's time allows; False if not."""
    pause = _BACKOFF * attempt
    if call.end - time.monotonic() <= pause + 0.05:
        return False
    time.sleep(pause)
    return True


def _read(ctx, call, title, answer, path):
    """The whole body of urllib3 `answer`, within the byte cap, as a Response."""
    cap = max_upstream_bytes(ctx)
    try:
        length = answer.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > cap:
            raise _too_large(title, cap)
        chunks = []
        size = 0
        for chunk in answer.stream(CHUNK, decode_content=True):
            size += len(chunk)
            if size > cap or answer.tell() > cap:
                raise _too_large(title, cap)
            chunks.append(chunk)
    except Exception:
        answer.close()      # a half-read connection is never reused
        raise
    finally:
        answer.release_conn()
    if call.expired:
        raise _late(ctx, call, title)
    return Response(answer.status, answer.headers, b"".join(chunks), path)


def _too_large(title, cap):
    return UnexpectedResponseError(
        f"{title} answered more than the relay reads from one answer "
        f"(RELAY_MAX_UPSTREAM_BYTES = {cap} bytes)")


def json_body(response, title):
    """The decoded JSON body of `response`, or an `unexpected response` error."""
    try:
        return response.json()
    except ValueError:
        raise UnexpectedResponseError(
            f"{title} answered HTTP {response.status_code} with a body that is "
            "not JSON") from None


def reset_state():
    """Forget connection pools (tests, emulator restarts)."""
    with _lock:
        _close_pools()
