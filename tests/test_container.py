"""The container: the Dockerfile, and its command (`make serve`) over real HTTP.

No Docker engine or registry is reachable here, so the image itself is never
built: the Dockerfile is checked as text, and the very command it runs (read
from the Makefile's SERVE, which must equal the Dockerfile's CMD) is started
on a free loopback port against the provider emulators.
"""
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
import requests

from api import http, providers, ratelimit
from api.tools import healthcheck
from api.version import NAME, VERSION
from tests import ctim_check
from tests.conftest import RELAY_VARS, SECRET, bearer, make_token
from tests.relay_server import free_port

ROOT = ctim_check.ROOT
BIN = Path(sys.executable).parent


def serve_command():
    """`make serve`'s command: the Makefile's SERVE, run from the venv's bin."""
    match = re.search(r"^SERVE := (.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert match, "Makefile has no SERVE := line"
    assert re.search(r"^serve: .*\n\t\$\(BIN\)/\$\(SERVE\)$", (ROOT / "Makefile").read_text(),
                     re.M), "`make serve` must run $(BIN)/$(SERVE)"
    return shlex.split(match.group(1))


def dockerfile():
    """[(INSTRUCTION, arguments)] of the Dockerfile, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), " ".join(rest.split())))
    return result


def instruction(name):
    return [rest for word, rest in dockerfile() if word == name]


class Server:
    """The SERVE command as a child process on 127.0.0.1:<free port>."""

    def __init__(self, tmp, **env):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out = Path(tmp) / f"serve-{self.port}.out"
        self.err = Path(tmp) / f"serve-{self.port}.err"
        base = {k: v for k, v in os.environ.items()
                if k not in RELAY_VARS and not k.endswith("_API_URL")}
        base.update({"PORT": str(self.port), "RELAY_HOST": "127.0.0.1", "SECRET_KEY": SECRET,
                     **env})
        command = serve_command()
        command[0] = str(BIN / command[0])
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.process = subprocess.Popen(command, cwd=ROOT, env=base, stdout=out, stderr=err)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.logs()
            try:
                if requests.get(self.url, timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                time.sleep(0.1)
        self.stop()
        raise AssertionError("the server did not start: " + self.logs())

    def logs(self):
        return self.out.read_text() + self.err.read_text()

    def workers(self):
        """PIDs of the master's worker processes (Linux /proc)."""
        pids = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid:
                pids.add(int(stat.parent.name))
        return pids

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def post(server, path, body=None, claims=None, timeout=30):
    headers = {} if claims is None else bearer(claims)
    return requests.post(server.url + path, json=body, headers=headers, timeout=timeout)


def valid_json(path, response, requested=None):
    assert response.status_code == 200, response.text
    body = response.json()
    ctim_check.assert_valid(path, body, requested)
    return body


@pytest.fixture(scope="module")
def served(emulators, tmp_path_factory):
    env = {emu.module.ENV_VAR: emu.url
           for emu in (emulators[name] for name in providers.NAMES)}
    server = Server(tmp_path_factory.mktemp("serve"), **env)
    yield server
    server.stop()


# --- the Dockerfile ------------------------------------------------------------------------

def test_dockerfile_base_user_port_healthcheck_and_command():
    assert instruction("FROM") == ["python:3.12-slim"]
    users = instruction("USER")
    assert users and users[-1] not in ("root", "0") and not users[-1].startswith("0:")
    assert "10001" in " ".join(instruction("RUN")), "the USER's uid must be created"
    assert instruction("EXPOSE") == ["9090"]
    assert any(re.search(r"\bPORT=9090\b", env) for env in instruction("ENV"))
    checks = instruction("HEALTHCHECK")
    assert len(checks) == 1
    options, _, command = checks[0].partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    assert json.loads(command) == ["python", "-m", "api.tools.healthcheck"]
    assert (ROOT / "api" / "tools" / "healthcheck.py").is_file()
    assert [json.loads(cmd) for cmd in instruction("CMD")] == [serve_command()], \
        "the image must run exactly `make serve`'s command"
    # Runtime requirements only: the container's file, which has no Zappa.
    assert instruction("RUN")[0] == "pip install -r requirements-container.txt"


def _ignored(patterns, path):
    """Docker's rule: the last matching pattern of .dockerignore wins."""
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = path.split("/")
        if any(fnmatchcase("/".join(parts[:i]), pattern) for i in range(1, len(parts) + 1)):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_secrets_tests_and_venvs_out():
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    copied = [word for args in instruction("COPY") for word in args.split()[:-1]]
    assert copied
    for source in copied:
        assert not _ignored(patterns, source), source
        assert (ROOT / source).exists(), source
    assert not _ignored(patterns, "api/providers/misp/client.py")
    for kept_out in (".env", "secrets.json", "relay.pem", "tests/conftest.py", ".venv/bin/python",
                     ".venv-lambda/x", ".git/config", "venv/x", "api/__pycache__/x.pyc",
                     ".aws/credentials", "zappa_settings.json", "module_settings.json"):
        assert _ignored(patterns, kept_out), kept_out


def test_gunicorn_stays_out_of_the_lambda_zip_requirements():
    def names(file):
        lines = (ROOT / file).read_text().splitlines()
        return {re.split(r"[=<>\[ ;]", line.strip())[0].lower() for line in lines
                if line.strip() and not line.startswith(("#", "-"))}

    lambda_reqs = names("requirements-pins.txt")
    container_reqs = names("requirements-container.txt")
    assert "gunicorn" not in lambda_reqs
    assert "gunicorn" in container_reqs
    # Same runtime as the Lambda (pins from requirements-pins.txt), less Zappa.
    assert container_reqs - {"gunicorn"} == lambda_reqs - {"zappa"}
    assert "-c requirements-pins.txt" in (ROOT / "requirements-container.txt").read_text()


# --- GET / ------------------------------------------------------------------------------------

def test_index_describes_the_relay_without_a_token(client):
    body = client.get("/").get_json()   # the client validates it
    assert body["name"] == NAME and body["version"] == VERSION
    assert body["providers"] == list(providers.NAMES)
    assert {"POST /observe/observables", "POST /health", "POST /version",
            "GET /watchdog", "GET /"} <= set(body["routes"])
    assert not any("<" in route for route in body["routes"]), "un-prefixed routes only"
    assert client.get("/otx/").get_json() == body
    assert SECRET not in json.dumps(body)


def test_index_check_rejects_a_wrong_body():
    assert ctim_check.check("/", {"name": "x"})
    assert ctim_check.check("/misp", {"name": "x", "version": "1.0.0", "providers": ["nope"],
                                      "routes": ["GET /"]})


# --- the served command -----------------------------------------------------------------------

def test_served_routes(served, emulators):
    index = requests.get(served.url, timeout=10)
    assert index.headers["Content-Type"] == "application/json"
    body = valid_json("/", index)
    assert body["name"] == NAME and SECRET not in index.text
    assert valid_json("/version", post(served, "/version")) == {"version": VERSION}
    assert requests.get(served.url + "/watchdog", headers={"Health-Check": "x"},
                        timeout=10).json() == {"data": "x"}
    for name in providers.NAMES:
        emulator = emulators[name]
        emulator.reset()
        claims = emulator.module.CLAIMS
        assert valid_json("/health", post(served, f"/{name}/health", claims=claims)) \
            == {"data": {"status": "ok"}}
        observables = emulator.module.observables(10)
        path = f"/{name}/observe/observables"
        body = valid_json(path, post(served, path, observables, claims), observables)
        assert "errors" not in body, body
        assert body["data"]["verdicts"]["count"] == 10, name
    forged = make_token({"key": "k"}, secret="not-the-" + SECRET)
    refused = requests.post(served.url + "/misp/observe/observables", json=[], timeout=10,
                            headers={"Authorization": f"Bearer {forged}"}).json()
    assert refused["errors"][0]["code"] == "authorization error"
    assert requests.get(served.url + "/nope", timeout=10).status_code == 404


def test_fifty_concurrent_observes_all_complete(served, emulators):
    workers = served.workers()
    assert len(workers) == 2, "RELAY_WORKERS defaults to 2"
    names = list(providers.NAMES)
    for name in names:
        emulators[name].reset()
        emulators[name].latency = 0.05

    def one(i):
        name = names[i % len(names)]
        observables = emulators[name].module.observables(10)
        path = f"/{name}/observe/observables"
        response = post(served, path, observables, emulators[name].module.CLAIMS, timeout=60)
        return path, observables, response

    try:
        with ThreadPoolExecutor(50) as pool:
            results = list(pool.map(one, range(50)))
    finally:
        for name in names:
            emulators[name].reset()
    for path, observables, response in results:
        body = valid_json(path, response, observables)
        assert "errors" not in body, body
        assert body["data"]["verdicts"]["count"] == 10, path
    assert served.workers() == workers, "a worker died or was restarted"
    logs = served.logs()
    for crash in ("WORKER TIMEOUT", "Traceback", "SIGKILL", "exited with code"):
        assert crash not in logs
    assert logs.count("Booting worker") == len(workers)


def test_access_log_has_no_query_string_or_header(served):
    token = make_token({"key": "k3y-in-the-token"})
    marker = "q-marker-2cdb"
    requests.get(f"{served.url}/?key={marker}", timeout=10,
                 headers={"Authorization": f"Bearer {token}", "Referer": "http://r.invalid/x"})
    post(served, f"/misp/health?api_key={marker}", claims={"key": "k3y-in-the-token"})
    time.sleep(0.3)
    logs = served.logs()
    assert re.search(r'"GET / HTTP/1\.1" 200 \d+ \d+ms', logs), logs[-2000:]
    assert '"POST /misp/health HTTP/1.1" 200' in logs
    for secret in (marker, token, "k3y-in-the-token", "r.invalid", "Bearer", SECRET):
        assert secret not in logs, secret


def test_healthcheck_tool(served, relay_env, capsys):
    relay_env.setenv("PORT", str(served.port))
    relay_env.setenv("RELAY_HOST", "0.0.0.0")
    assert healthcheck.url() == f"http://127.0.0.1:{served.port}/"
    assert healthcheck.main() == 0
    relay_env.setenv("PORT", str(free_port()))
    assert healthcheck.main() == 1
    assert "unhealthy" in capsys.readouterr().err


def test_healthcheck_tool_refuses_another_server(emulators, relay_env, capsys):
    emulator = emulators["cyberprotect"]
    relay_env.setenv("RELAY_HOST", "127.0.0.1")
    relay_env.setenv("PORT", emulator.root.rsplit(":", 1)[1])
    assert healthcheck.main(timeout=5) == 1
    assert "unhealthy" in capsys.readouterr().err


def test_deadline_and_body_cap_hold_under_concurrency(emulators, tmp_path):
    """20 requests at once: each ends by RELAY_DEADLINE with what it has, and
    oversized bodies are refused while valid ones in the same burst succeed."""
    misp = emulators["misp"]
    misp.reset()
    server = Server(tmp_path, API_URL=misp.url, RELAY_DEADLINE="1",
                    RELAY_MAX_BODY_BYTES="2000")
    observables = misp.module.observables(10)
    big = [{"type": "ip", "value": f"10.0.{i // 256}.{i % 256}"} for i in range(100)]
    claims = misp.module.CLAIMS
    try:
        misp.latency = 4.0

        def slow(_):
            started = time.monotonic()
            response = post(server, "/observe/observables", observables, claims)
            return time.monotonic() - started, response

        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(slow, range(20)))
        for seconds, response in answers:
            body = valid_json("/observe/observables", response, observables)
            # One per upstream call still out (MISP: restSearch, warninglists).
            assert {e["code"] for e in body["errors"]} == {"request timeout"}, body
            assert seconds < 3.5, "the deadline did not hold"
        misp.latency = 0.0

        def mixed(i):
            body = big if i % 2 else observables
            return body, post(server, "/observe/observables", body, claims)

        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(mixed, range(20)))
        for body, response in answers:
            answer = valid_json("/observe/observables", response, body)
            if body is big:
                assert answer["errors"][0]["code"] == "invalid argument", answer
                assert "limit of 2000 bytes" in answer["errors"][0]["message"]
            else:
                assert "errors" not in answer and answer["data"]["verdicts"]["count"] == 10
    finally:
        misp.reset()
        assert server.stop() == 0, server.logs()


def test_upstream_byte_cap_holds_under_concurrency(emulators, tmp_path):
    """20 observes at once, each with one oversized upstream answer: that
    observable alone gets `unexpected response`, the other keeps its verdict,
    and no worker dies for it."""
    otx = emulators["otx"]
    otx.reset()
    good, huge = otx.module.observables(2)
    otx.options["body"] = {huge["value"]: {"pulse_info": {"pulses": []},
                                           "padding": "x" * 200_000}}
    server = Server(tmp_path, OTX_API_URL=otx.url, RELAY_MAX_UPSTREAM_BYTES="50000",
                    RELAY_CACHE_TTL="0")
    try:
        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(lambda _: post(
                server, "/otx/observe/observables", [good, huge], otx.module.CLAIMS),
                range(20)))
        for response in answers:
            body = valid_json("/otx/observe/observables", response, [good, huge])
            assert [e["code"] for e in body["errors"]] == ["unexpected response"], body
            assert huge["value"] in body["errors"][0]["message"]
            verdicts = body["data"]["verdicts"]["docs"]
            assert [v["observable"] for v in verdicts] == [good], body
    finally:
        otx.reset()
        assert server.stop() == 0, server.logs()


def test_sigterm_finishes_in_flight_requests_then_exits(emulators, tmp_path):
    misp = emulators["misp"]
    misp.reset()
    server = Server(tmp_path, API_URL=misp.url)
    observables = misp.module.observables(10)
    answers = []

    def observe():
        answers.append(post(server, "/observe/observables", observables, misp.module.CLAIMS))

    misp.latency = 1.5
    clients = [threading.Thread(target=observe) for _ in range(6)]
    try:
        for client in clients:
            client.start()
        deadline = time.monotonic() + 10

        def searches():  # one restSearch per observe (beside a warninglist check)
            return sum(1 for r in list(misp.requests) if r["path"] == "/events/restSearch")

        while searches() < 6 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert searches() == 6, "the requests are not in flight"
        server.process.send_signal(signal.SIGTERM)
        for client in clients:
            client.join(30)
        assert server.process.wait(30) == 0, server.logs()
    finally:
        misp.reset()
        server.stop()
    assert len(answers) == 6
    for response in answers:
        body = valid_json("/observe/observables", response, observables)
        assert "errors" not in body and body["data"]["verdicts"]["count"] == 10
    logs = server.logs()
    assert "Handling signal: term" in logs and "Shutting down: Master" in logs
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url, timeout=2)


# --- process-level state under threads --------------------------------------------------------

def _at_once(func, count=32):
    barrier = threading.Barrier(count)

    def call(_):
        barrier.wait()
        return func()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(call, range(count)))


def test_shared_state_is_created_once_under_threads():
    from api.context import RequestContext
    from api.settings import Settings

    sessions = _at_once(lambda: http.pool("race-test", "http://127.0.0.1:1"))
    assert len({id(s) for s in sessions}) == 1
    ctx = RequestContext(provider="MISP", settings=Settings.from_env(),
                         claims={"key": "k"}, entities_limit=1,
                         deadline=time.monotonic() + 5)
    gates = _at_once(lambda: ratelimit.RateGate.for_credential("race-test", ctx))
    assert len({id(g) for g in gates}) == 1
    loaded = _at_once(lambda: providers.get("otx"))
    assert len({id(p) for p in loaded}) == 1
