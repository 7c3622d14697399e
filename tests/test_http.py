"""The transport's guarantees (issue 11), for every provider, over loopback
servers built for each case (tests/loopback.py): no redirect followed, no
cookie kept, capped answers, a deadline no upstream can stretch, deep JSON
read as an upstream error, and no key in urllib3's log lines."""
import gzip
import logging
import socket
import time

import pytest

from api import http
from tests import loopback
from tests.conftest import bearer
from tests.emulators import load

NAMES = ("misp", "pulsedive", "otx", "cyberprotect")
IP = {"type": "ip", "value": "198.51.100.23"}
OTHER = {"type": "ip", "value": "198.51.100.24"}
MISSING_PULSEDIVE = loopback.response(404, '{"error": "Indicator not found."}')


@pytest.fixture
def serve():
    servers = []

    def start(answer, pause=0.0):
        server = loopback.Scripted(answer, pause)
        servers.append(server)
        return server
    yield start
    for server in servers:
        server.stop()


def point(relay_env, name, url):
    """Send provider `name`'s calls to `url`."""
    module = load(name)
    relay_env.setenv(module.ENV_VAR, url + getattr(module, "BASE_PATH", ""))


def claims(name, key=None):
    value = dict(load(name).CLAIMS)
    if key is not None and "key" in value:
        value["key"] = key
    return value


def observe(client, name, observables=(IP,), key=None):
    response = client.post(f"/{name}/observe/observables", json=list(observables),
                           headers=bearer(claims(name, key)))
    return response.get_json()


def codes(body):
    """The distinct error codes of a response, in order."""
    return list(dict.fromkeys(error["code"] for error in body.get("errors", [])))


# --- item 2: redirects --------------------------------------------------------

@pytest.mark.parametrize("status", [302, 307])
@pytest.mark.parametrize("name", NAMES)
def test_no_redirect_is_followed(client, relay_env, serve, name, status):
    elsewhere = serve(lambda request: loopback.response(200, '{"version": "2.4.190"}'))
    origin = serve(lambda request: loopback.response(
        status, "", {"Location": elsewhere.url + request["target"]}))
    point(relay_env, name, origin.url)
    body = observe(client, name)
    assert elsewhere.requests == []     # the key never went to the other host
    assert codes(body) == ["unexpected response"], body
    assert f"HTTP {status} (a redirect" in body["errors"][0]["message"]


def test_misp_health_is_not_ok_from_a_redirect(client, relay_env, serve):
    elsewhere = serve(lambda request: loopback.response(200, '{"version": "2.4.190"}'))
    origin = serve(lambda request: loopback.response(
        302, "", {"Location": elsewhere.url + "/servers/getVersion"}))
    point(relay_env, "misp", origin.url)
    body = client.post("/misp/health", headers=bearer(claims("misp"))).get_json()
    assert "data" not in body and elsewhere.requests == []
    assert "redirect" in body["errors"][0]["message"]


# --- item 3: cookies ----------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_no_cookie_is_stored_or_sent(client, relay_env, serve, name):
    server = serve(lambda request: loopback.response(
        404, '{"error": "Indicator not found."}',
        {"Set-Cookie": "session=tenant-a; Path=/"}))
    point(relay_env, name, server.url)
    observe(client, name, key="tenant-a-key")
    observe(client, name, key="tenant-b-key")
    assert len(server.requests) >= 2
    assert [r for r in server.requests if "cookie" in r["headers"]] == []


# --- item 4: byte caps --------------------------------------------------------

def _huge_with_length(request):
    return loopback.response(200, b'{"x": "' + b"a" * (3 << 20) + b'"}')


def _huge_streamed(request):
    # 40 MB of small JSON objects, no Content-Length: read until the cap.
    yield loopback.response(200, b"", {"Content-Length": None, "Connection": "close"}
                            ).replace(b"Content-Length: None\r\n", b"")
    yield b"["
    for _ in range(640):
        yield b'{"a": 1},' * 7000


def _gzip_bomb(request):
    bomb = gzip.compress(b" " * (256 << 20), compresslevel=9)   # ~250 KB on the wire
    return loopback.response(200, bomb, {"Content-Encoding": "gzip"})


@pytest.mark.parametrize("answer", [_huge_with_length, _huge_streamed, _gzip_bomb],
                         ids=["content-length", "streamed", "gzip-bomb"])
def test_an_answer_over_the_byte_cap_costs_that_observable_only(
        client, relay_env, serve, answer):
    relay_env.setenv("RELAY_MAX_UPSTREAM_BYTES", str(1 << 20))
    server = serve(lambda request: answer(request) if IP["value"] in request["target"]
                   else MISSING_PULSEDIVE)
    point(relay_env, "pulsedive", server.url)
    body = observe(client, "pulsedive", [IP, OTHER])
    assert codes(body) == ["unexpected response"], body
    (error,) = body["errors"]
    assert IP["value"] in error["message"] and OTHER["value"] not in error["message"]
    assert "RELAY_MAX_UPSTREAM_BYTES" in error["message"]
    assert len(server.requests) == 2


@pytest.mark.parametrize("name", NAMES)
def test_every_provider_caps_its_answers(client, relay_env, serve, name):
    relay_env.setenv("RELAY_MAX_UPSTREAM_BYTES", "1000")
    server = serve(lambda request: loopback.response(200, "[" + "1," * 1000 + "1]"))
    point(relay_env, name, server.url)
    body = observe(client, name)
    assert codes(body) == ["unexpected response"]
    assert "RELAY_MAX_UPSTREAM_BYTES" in body["errors"][0]["message"]


def test_the_default_cap_leaves_room_for_large_misp_answers():
    from api.context import RequestContext
    from api.settings import Settings

    ctx = RequestContext("misp", Settings.from_env({}))
    assert http.max_upstream_bytes(ctx) >= 8 << 20


# --- item 5: the deadline -----------------------------------------------------

def _trickle(phase):
    whole = loopback.response(200, '{"response": []}')
    head, _, rest = whole.partition(b"\r\n\r\n")
    if phase == "status line":
        return lambda request: (whole[i:i + 1] for i in range(len(whole)))
    return lambda request: iter([head + b"\r\n\r\n"] + [rest[i:i + 1] for i in range(len(rest))])


@pytest.mark.parametrize("phase", ["status line", "body"])
@pytest.mark.parametrize("name", NAMES)
def test_a_trickling_upstream_cannot_hold_the_request(client, relay_env, serve, name, phase):
    relay_env.setenv("RELAY_DEADLINE", "1.5")
    relay_env.setenv("RELAY_HTTP_TIMEOUT", "5")
    server = serve(_trickle(phase), pause=0.25)   # each byte well within the read timeout
    point(relay_env, name, server.url)
    started = time.monotonic()
    body = observe(client, name)
    assert time.monotonic() - started < 1.5 + 0.5
    assert codes(body) == ["request timeout"], body


def test_the_per_call_timeout_bounds_a_whole_trickling_call(client, relay_env, serve):
    relay_env.setenv("RELAY_HTTP_TIMEOUT", "0.8")
    server = serve(_trickle("body"), pause=0.2)
    point(relay_env, "cyberprotect", server.url)
    started = time.monotonic()
    body = observe(client, "cyberprotect", [IP, OTHER])
    assert time.monotonic() - started < 0.8 + 0.5
    assert codes(body) == ["request timeout"], body
    assert OTHER["value"] in str(body["errors"]) and IP["value"] in str(body["errors"])


@pytest.fixture
def unanswered_connects():
    """A loopback port whose accept queue is full: connects to it hang."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(listener.getsockname())
        fillers.append(filler)
    time.sleep(0.1)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    for sock in fillers + [listener]:
        sock.close()


@pytest.mark.parametrize("name", NAMES)
def test_connect_retries_stay_within_the_deadline(client, relay_env, name,
                                                  unanswered_connects):
    relay_env.setenv("RELAY_DEADLINE", "1.5")
    relay_env.setenv("RELAY_HTTP_TIMEOUT", "1")
    point(relay_env, name, unanswered_connects)
    started = time.monotonic()
    body = observe(client, name)
    assert time.monotonic() - started < 1.5 + 0.5
    assert codes(body) == ["request timeout"], body


def test_refused_connects_are_retried_then_unavailable(client, relay_env):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    point(relay_env, "cyberprotect", f"http://127.0.0.1:{port}")
    body = observe(client, "cyberprotect")
    assert codes(body) == ["service unavailable"]
    assert "Unable to reach" in body["errors"][0]["message"]


# --- item 12: deep JSON from upstream -----------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_deeply_nested_upstream_json_is_an_unexpected_response(
        client, relay_env, serve, name):
    nested = "[" * 100000 + "]" * 100000
    server = serve(lambda request: loopback.response(200, nested))
    point(relay_env, name, server.url)
    body = observe(client, name)
    assert codes(body) == ["unexpected response"], body


# --- item 1: no key in urllib3's log lines ---------------------------------------

def test_no_key_in_any_urllib3_log_line(client, relay_env, serve, caplog):
    key = "pulsedive-key-that-must-stay-secret-7f3a"
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")
    malformed = [b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 2\r\nthis line is no header\r\n\r\n{}"]
    answers = iter([malformed, loopback.response(502, "{}"), loopback.response(502, "{}")])
    server = serve(lambda request: next(answers, MISSING_PULSEDIVE))
    point(relay_env, "pulsedive", server.url)
    observe(client, "pulsedive", key=key)                  # header-parse warning
    observe(client, "pulsedive", [OTHER], key=key)         # a retried 502
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    point(relay_env, "pulsedive", f"http://127.0.0.1:{port}")
    observe(client, "pulsedive", key=key)                  # retried connects
    assert any(r.name.startswith("urllib3") for r in caplog.records)
    assert key in server.requests[0]["target"]             # it was in the URL
    assert key not in caplog.text
