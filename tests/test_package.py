"""The real Zappa artifact: `zappa package dev` from the lean virtualenv,
then the package's own `handler.lambda_handler` answering API Gateway REST
(v1) and Lambda function-URL (v2) events, outside the test virtualenv.

A wrong `app_function`, a missing runtime dependency or an `exclude` that
drops something the relay imports makes these tests fail.
"""
import fnmatch
import json
import runpy
import shutil
import zipfile

import pytest

from api.version import VERSION
from tests import ctim_check
from tests import lambda_env as L
from tests.telemetry_check import split_output

MAX_ZIP_BYTES = 8 * 1024 * 1024
# Zappa's deploy-time dependencies: the Lambda never imports them.
DEPLOY_ONLY = ("troposphere", "cfn_flip", "yaml", "placebo", "argcomplete", "hjson",
               "tqdm", "slugify", "setuptools", "pip", "wheel", "toml", "packaging")
PROVIDED_BY_RUNTIME = ("boto3", "botocore", "s3transfer")
# The container's WSGI server (requirements-container.txt) has no place on Lambda.
CONTAINER_ONLY = ("gunicorn",)


@pytest.fixture(scope="module")
def package():
    """(zip path, unpacked dir, runtime layer, seconds to package)."""
    home = L.tmpfs_home("relay-package-")
    try:
        zip_path = home / "relay.zip"
        seconds = L.package(home, zip_path)
        print(f"\nzappa package dev: {seconds:.1f} s, "
              f"{zip_path.stat().st_size / 1048576:.2f} MiB")
        task = L.unpack(zip_path, home / "var-task")
        yield zip_path, task, L.runtime_layer(home), seconds
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _top_level(zip_path):
    with zipfile.ZipFile(zip_path) as archive:
        return {name.split("/")[0] for name in archive.namelist()}


def test_zip_is_lean(package):
    zip_path, _, _, _ = package
    assert zip_path.stat().st_size <= MAX_ZIP_BYTES
    top = _top_level(zip_path)
    for required in ("handler.py", "zappa_settings.py", "app.py", "api", "flask",
                     "werkzeug", "jwt", "requests", "zappa"):
        assert required in top, required
    dev_files = {"tests", "docs", "aws", "modules", ".venv", ".venv-lambda", ".git",
                 "Makefile", "requirements.txt", "test-requirements.txt", "README.md",
                 "module_settings.json", "zappa_settings.json", "Dockerfile",
                 ".dockerignore", "gunicorn.conf.py", "requirements-container.txt"}
    assert not top & dev_files
    left = [name for name in top
            for pkg in PROVIDED_BY_RUNTIME + DEPLOY_ONLY + CONTAINER_ONLY
            if name == pkg or name.startswith(pkg + "-")]
    assert not left, left


def test_settings_keep_compressed_botocore_data():
    """An `exclude` of `*.gz` would silently break a packaged botocore."""
    stage = L.load_settings()[L.STAGE]
    for pattern in stage.get("exclude", []) + stage.get("exclude_glob", []):
        assert not fnmatch.fnmatch("endpoints.json.gz", pattern), pattern
        assert not fnmatch.fnmatch("service-2.json.gz", pattern), pattern


def test_generated_settings_carry_no_secrets_and_quiet_logs(package):
    _, task, _, _ = package
    generated = runpy.run_path(str(task / "zappa_settings.py"))
    assert (generated["APP_MODULE"], generated["APP_FUNCTION"]) == ("app", "app")
    # Zappa logs every raw event (Authorization header included) at DEBUG and
    # puts tracebacks in 500 bodies when `debug` is on.
    assert generated["LOG_LEVEL"] == "WARNING"
    assert generated["DEBUG"] is False
    # `environment_variables` are baked into the zip: Zappa's region only.
    assert set(generated.get("ENVIRONMENT_VARIABLES", {})) <= {"AWS_REGION"}


def _mint(claims, directory):
    """The README's way: `jwt dev -f claims.json` run in the repository."""
    claims_file = directory / "claims.json"
    claims_file.write_text(json.dumps(claims))
    return L.jwt_dev(claims_file)


def _misp_module(emulators, directory):
    """(MISP emulator, token, SECRET_KEY, auth header, observables.json)."""
    misp = emulators["misp"]
    misp.reset()
    token, secret = _mint(misp.module.CLAIMS, directory)
    observables = json.loads((L.REPO / "observables.json").read_text())
    return misp, token, secret, {"Authorization": f"Bearer {token}"}, observables


def test_handler_answers_rest_v1_and_function_url_v2(package, emulators, tmp_path):
    _, task, layer, _ = package
    misp, token, secret, auth, observables = _misp_module(emulators, tmp_path)
    events = [
        L.rest_v1_event("/version", method="POST"),
        L.rest_v1_event("/observe/observables", observables, auth),
        L.function_url_v2_event("/observe/observables", observables, auth),
        L.function_url_v2_event("/misp/deliberate/observables", observables[:3], auth),
        L.rest_v1_event("/health", headers=auth),
        L.rest_v1_event("/observe/observables", observables),  # no token
    ]
    env = {"SECRET_KEY": secret, misp.module.ENV_VAR: misp.url}
    answer = L.invoke_handler(task, events, env, layer)
    results = answer["results"]
    assert all(r["statusCode"] == 200 for r in results), results
    bodies = [L.response_json(r) for r in results]

    assert bodies[0] == {"version": VERSION}
    for index in (1, 2):
        body = bodies[index]
        ctim_check.assert_valid("/observe/observables", body, observables)
        assert "errors" not in body, body
        verdicts = body["data"]["verdicts"]["docs"]
        assert {v["observable"]["value"] for v in verdicts} >= {
            o["value"] for o in observables if o["value"] != "192.0.2.200"}
        assert body["data"]["judgements"]["count"] >= 1
        assert body["data"]["sightings"]["count"] >= 1
    assert bodies[1]["data"]["verdicts"]["count"] == bodies[2]["data"]["verdicts"]["count"]
    ctim_check.assert_valid("/deliberate/observables", bodies[3], observables[:3])
    assert set(bodies[3]["data"]) == {"verdicts"}
    assert bodies[4] == {"data": {"status": "ok"}}
    assert bodies[5]["errors"][0]["code"] == "authorization error"
    assert misp.calls >= 3  # the handler really went to the MISP emulator
    # Only the package and the runtime layer were importable (-S), so every
    # dependency the relay used came from the zip.
    assert answer["task_files"], "nothing imported from the package"
    for deploy_only in DEPLOY_ONLY:
        assert deploy_only not in answer["modules"], deploy_only
    print(f"\ncold `import handler` from the package: {answer['import_seconds'] * 1000:.0f} ms")


def test_handler_checks_xdr_rs256_tokens_without_cryptography(package, emulators, xdr, ca):
    """An XDR module's RS256 token, audience the module URL as API Gateway (with
    its stage) or a function URL shows it, checked by the package alone against
    XDR's JWKS over TLS: once per warm container, no `cryptography` in the zip."""
    _, task, layer, _ = package
    misp = emulators["misp"]
    misp.reset()

    def auth(aud):
        return {"Authorization": f"Bearer {xdr.token({**misp.module.CLAIMS, 'aud': aud})}"}

    rest_base = f"https://{L.HOST_V1}/{L.STAGE}"
    events = [L.rest_v1_event("/misp/health", headers=auth(rest_base + "/misp")),
              L.rest_v1_event("/health", headers=auth(rest_base)),
              L.function_url_v2_event("/misp/health", None, auth(f"https://{L.HOST_URL}/misp")),
              L.rest_v1_event("/misp/health", headers=auth(rest_base + "/otx")),
              L.rest_v1_event("/misp/health", headers=auth(f"https://{L.HOST_V1}/misp"))]
    env = {misp.module.ENV_VAR: misp.url, "RELAY_JWKS_HOSTS": xdr.host,
           "REQUESTS_CA_BUNDLE": str(ca.ca_file)}
    answer = L.invoke_handler(task, events, env, layer)
    bodies = [L.response_json(r) for r in answer["results"]]
    assert bodies[:3] == [{"data": {"status": "ok"}}] * 3, bodies
    for body in bodies[3:]:   # another module's URL; the URL without the stage
        assert body["errors"][0]["message"] == \
            "Authorization failed: Wrong configuration-token-audience"
    assert xdr.fetches == 1
    assert not [m for m in answer["modules"] if m.split(".")[0] == "cryptography"]


def test_packaging_time_is_reasonable(package):
    _, _, _, seconds = package
    assert seconds < 60


def test_handler_logs_and_metrics(package, emulators, tmp_path):
    """The packaged handler under Zappa's WARNING log level: one JSON request
    line per invocation (API Gateway's request id), valid EMF, no secret."""
    _, task, layer, _ = package
    misp, token, secret, auth, observables = _misp_module(emulators, tmp_path)
    events = [
        L.rest_v1_event("/misp/observe/observables", observables, auth),
        L.function_url_v2_event("/deliberate/observables", observables, auth),
        L.rest_v1_event("/health", headers={"Authorization": "Bearer x" + token}),
    ]
    env = {"SECRET_KEY": secret, misp.module.ENV_VAR: misp.url}
    answer = L.invoke_handler(task, events, env, layer)
    requests, _, metrics = split_output(answer["stdout"], only_json=False)
    assert [(r["request_id"], r["route"], r["outcome"]) for r in requests] == [
        ("req-v1", "observe/observables", "ok"), ("req-v2", "deliberate/observables", "ok"),
        ("req-v1", "health", "error")]
    assert requests[0]["upstream_calls"] >= 1 and requests[0]["entities"]["verdicts"] >= 1
    assert requests[2]["errors"] == {"authorization error": 1}
    assert {(m["route"], m["Requests"]) for m in metrics if "code" not in m} == {
        ("observe/observables", 1), ("deliberate/observables", 1), ("health", 1)}
    written = answer["stdout"] + answer["stderr"]
    for value in (token, secret, *misp.module.CLAIMS.values()):
        assert value not in written


# --- issue 11 item 1: no secret in any line the deployed handler writes ---------------

def _broken_header_server():
    """A loopback server whose answers carry a malformed header block, so that
    urllib3 logs "Failed to parse headers (url=...)" at WARNING."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"this line is no header\r\nContent-Length: 2\r\n"
                             b"Connection: close\r\n\r\n{}")

    threading.Thread(target=serve, daemon=True).start()
    return server


def _closed_port():
    import socket

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


SECRET_CASES = ("\r\n", "\n", "\t", " ", "\x00")


TRANSPORT_MARKERS = ("Retrying (", "Failed to parse headers", "urllib3")


@pytest.fixture(scope="module")
def handler_output(package, emulators):
    """(secrets, output lines) of the packaged handler, at the shipped log_level,
    driven through every provider with good and odd keys, a bad JWT, and
    failing (emulated 4xx/5xx/not JSON), dead and malformed upstreams."""
    from tests.conftest import SECRET, make_token
    from tests.emulators import NAMES

    _, task, layer, _ = package
    secrets = {SECRET}
    events = []
    for name in NAMES:
        emulator = emulators[name]
        emulator.reset()
        module = emulator.module
        observables = module.observables(4)
        tokens = [make_token(module.CLAIMS)]
        tokens += [make_token(dict(module.CLAIMS, key=module.CLAIMS["key"] + odd))
                   for odd in SECRET_CASES if module.CLAIMS.get("key")]
        tokens.append(make_token(module.CLAIMS, secret="another-secret-" + "z" * 40))
        secrets.update(tokens)
        secrets.update(f"Bearer {t}" for t in tokens)
        secrets.update(str(v) for v in module.CLAIMS.values())
        for token in tokens:
            auth = {"Authorization": f"Bearer {token}"}
            events += [L.rest_v1_event(f"/{name}/observe/observables", observables, auth),
                       L.function_url_v2_event(f"/{name}/deliberate/observables",
                                               observables, auth),
                       L.rest_v1_event(f"/{name}/health", headers=auth)]
        values = [o["value"] for o in observables]
        emulator.fail = {values[0]: 500, values[1]: 429, values[2]: 502}
        if name == "otx":
            emulator.fail[values[3]] = "not json"
    emulators["misp"].fail = {"*": 500}
    emulated = {emulators[n].module.ENV_VAR: emulators[n].url for n in NAMES}
    broken = _broken_header_server()
    dead_url = f"http://127.0.0.1:{_closed_port()}"
    broken_url = f"http://127.0.0.1:{broken.getsockname()[1]}"
    written = []
    try:
        for urls in (emulated, {var: dead_url for var in emulated},
                     {var: broken_url for var in emulated}):
            answer = L.invoke_handler(task, events, {"SECRET_KEY": SECRET,
                                                     "RELAY_DEADLINE": "6", **urls}, layer)
            written += [answer["stdout"], answer["stderr"], json.dumps(answer["results"])]
    finally:
        broken.close()
    assert all(emulators[n].calls for n in NAMES), "an emulator was never reached"
    lines = "\n".join(written).splitlines()
    assert any("Failed to parse headers" in line or "Retrying" in line or "Unable to reach"
               in line for line in lines), "the odd upstreams were not exercised"
    return {s for s in secrets if s}, lines


def _leaking(secrets, lines):
    return [line[:160] for line in lines if any(s in line for s in secrets)]


def test_no_secret_in_the_deployed_handlers_output(handler_output):
    """Issue 11 item 1: logs (all levels that ship), stderr and answers."""
    secrets, lines = handler_output
    own = [line for line in lines if not any(m in line for m in TRANSPORT_MARKERS)]
    assert not _leaking(secrets, own)


def test_no_secret_in_transport_log_lines(handler_output):
    secrets, lines = handler_output
    transport = [line for line in lines if any(m in line for m in TRANSPORT_MARKERS)]
    assert not _leaking(secrets, transport)


def test_requirements_alone_give_the_jwt_command(tmp_path):
    """Issue 11 item 15: the seeds' setup. The lean virtualenv is a fresh venv
    where `pip install -r requirements.txt` is the only install step; its `jwt`
    works from any directory."""
    import inspect
    import subprocess

    assert inspect.getsource(L.ensure_lambda_venv).count('pip + ["-r", "requirements.txt"]') == 1
    assert "-e" not in inspect.getsource(L.ensure_lambda_venv).split("pip + [", 1)[1]
    venv = L.ensure_lambda_venv()
    done = subprocess.run([str(venv / "bin" / "jwt"), "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: jwt ")
