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
