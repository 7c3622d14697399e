"""`jwt check <module URL>` against the relay served on loopback with the
emulators, and against test doubles (API Gateway 502, invalid CTIM)."""
import io
import json
import threading
from contextlib import contextmanager

import pytest
from werkzeug.serving import make_server

from api.tools import check, cli, contract
from tests.conftest import SECRET, make_token
from tests.relay_server import free_port

OBSERVABLES = [{"type": "ip", "value": "198.51.100.23"},
               {"type": "domain", "value": "login-verify.example.net"},
               {"type": "sha256", "value": "3" * 64}]


@contextmanager
def serve(wsgi_app):
    """`wsgi_app` on a loopback port in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, wsgi_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


def double(answers):
    """A WSGI app answering {route: (status, body)}, like a broken deployment."""
    def app(environ, start_response):
        route = environ["PATH_INFO"].strip("/")
        status, body = answers.get(route, (200, {"data": {"status": "ok"}}))
        payload = json.dumps(body).encode()
        start_response(f"{status} X", [("Content-Type", "application/json"),
                                       ("Content-Length", str(len(payload)))])
        return [payload]
    return app


@pytest.fixture
def relay(app):
    with serve(app) as url:
        yield url


@pytest.fixture
def misp(use_emulator):
    return use_emulator("misp")


def run(url, token, observables=OBSERVABLES, **kwargs):
    out, err = io.StringIO(), io.StringIO()
    status = check.run(url, token, observables, out=out, err=err, timeout=10, **kwargs)
    return status, out.getvalue(), err.getvalue()


def test_good_deployment_passes(relay, misp):
    token = make_token(misp.module.CLAIMS)
    status, out, err = run(f"{relay}/misp", token)
    assert status == 0, out
    for route in check.ROUTES:
        assert route in out
        assert f"] {route}: HTTP 200" in err  # one progress line per route
    assert "OK: 6 routes" in out
    assert "verdicts" in out and "judgements" in out
    for secret in (token, SECRET, misp.module.CLAIMS["key"]):
        assert secret not in out + err


def test_command_line_with_claims_and_secret_key(relay, misp, tmp_path, capsys):
    claims = tmp_path / "claims.json"
    claims.write_text(json.dumps(misp.module.CLAIMS))
    observables = tmp_path / "observables.json"
    observables.write_text(json.dumps(OBSERVABLES))
    out = io.StringIO()
    status = cli.main(["check", f"{relay}/misp", "--claims", str(claims), "--secret-key",
                       SECRET, "--observables", str(observables), "--timeout", "10"], out=out)
    assert status == 0, out.getvalue()
    assert SECRET not in out.getvalue() + capsys.readouterr().err


def test_wrong_secret_key(relay, misp, tmp_path, capsys):
    claims = tmp_path / "claims.json"
    claims.write_text(json.dumps(misp.module.CLAIMS))
    wrong = "w" * 64
    status = check.main([f"{relay}/misp", "--claims", str(claims), "--secret-key", wrong])
    captured = capsys.readouterr()
    assert status == 1
    assert "SECRET_KEY on the Lambda differs from the one that signed this token" \
        in captured.out
    assert wrong not in captured.out + captured.err
    assert SECRET not in captured.out + captured.err


def test_wrong_token(relay, misp):
    status, out, err = run(f"{relay}/misp", "not-a-jwt")
    assert status == 1
    assert "Wrong JWT structure" in out and "not a whole JWT" in out
    assert "not-a-jwt" not in out + err
    # A real JWT signed elsewhere: the SECRET_KEY hint, the token never shown.
    token = make_token(misp.module.CLAIMS, secret="z" * 64)
    status, out, err = run(f"{relay}/misp", token)
    assert status == 1 and "SECRET_KEY on the Lambda differs" in out
    assert token not in out + err


def test_token_without_the_provider_claims(relay, misp):
    status, out, _ = run(f"{relay}/misp", make_token({"other": "x"}))
    assert status == 1 and "lacks the credential claims" in out


def test_dead_url():
    status, out, _ = run(f"http://127.0.0.1:{free_port()}", make_token())
    assert status == 1
    assert out.count("\n") == 1 and "cannot reach" in out and "hint" in out


def test_api_gateway_502():
    answers = {"health": (502, {"message": "Internal server error"})}
    with serve(double(answers)) as url:
        status, out, _ = run(url, make_token())
    assert status == 1
    assert "API Gateway answered 502" in out and "zappa tail" in out


def test_ingress_lock_down_refusal():
    message = ("User: anonymous is not authorized to perform: execute-api:Invoke on "
               "resource: arn:aws:execute-api:us-east-1:123456789012:abc/dev/POST/version")
    with serve(double({"version": (403, {"Message": message})})) as url:
        status, out, _ = run(url, make_token())
    assert status == 1 and "resource policy refused this address" in out


def test_wrong_path_is_not_a_relay():
    answers = {"version": (403, {"message": "Missing Authentication Token"})}
    with serve(double(answers)) as url:
        status, out, _ = run(url, make_token())
    assert status == 1 and "no relay route at this URL" in out


def test_relay_answering_invalid_ctim():
    verdict = {"type": "verdict", "disposition": 2, "observable": OBSERVABLES[0],
               "valid_time": {"start_time": "2026-01-02T00:00:00Z"}}
    judgement = {"id": "transient:judgement-1", "type": "judgement"}  # fields missing
    answers = {
        "version": (200, {"version": "1.0"}),
        "health": (200, {"data": {"status": "ok"}}),
        "deliberate/observables": (200, {"data": {"verdicts": {
            "count": 2, "docs": [verdict, verdict]}}}),
        "observe/observables": (200, {"data": {
            "verdicts": {"count": 1, "docs": [dict(verdict, judgement_id="transient:x")]},
            "judgements": {"count": 2, "docs": [judgement, judgement]}}}),
        "refer/observables": (200, {"data": [{"id": "ref-1", "title": "t"}]}),
        "respond/observables": (200, {"data": [], "extra": 1}),
    }
    with serve(double(answers)) as url:
        status, out, _ = run(url, make_token())
    assert status == 1
    for problem in ("2 verdicts for", "missing schema_version", "duplicate ids", "dangling",
                    "missing description, url, categories", "unexpected envelope keys"):
        assert problem in out, problem
    assert "FAILED: 4 of 6 routes" in out


def test_upstream_outage_is_reported(relay, misp):
    misp.fail["*"] = 503
    status, out, _ = run(f"{relay}/misp", make_token(misp.module.CLAIMS))
    assert status == 1
    assert "service unavailable" in out and "FAILED" in out


def test_usage_errors(tmp_path, capsys, relay_env):
    relay_env.delenv("SECRET_KEY")
    assert check.main(["http://127.0.0.1:9"]) == 2
    assert "--token" in capsys.readouterr().err
    claims = tmp_path / "claims.json"
    claims.write_text("{}")
    assert check.main(["http://127.0.0.1:9", "--claims", str(claims)]) == 2
    assert "--secret-key" in capsys.readouterr().err
    bad = tmp_path / "obs.json"
    bad.write_text("[1]")
    assert check.main(["http://127.0.0.1:9", "--token", "t", "--observables", str(bad)]) == 2


# --- the contract rules themselves (also used by tests/ctim_check.py) ------

def test_contract_rules_catch_mutations():
    good = {"data": {"verdicts": {"count": 0, "docs": []}}}
    assert contract.check("observe/observables", good, OBSERVABLES) == []
    assert contract.check("version", {"version": "2"}) == []
    assert contract.check("version", {"data": 1})
    assert contract.check("health", {"data": {"status": "fine"}})
    assert contract.check("health", {"errors": [{"type": "fatal", "code": "x"}]})
    assert contract.check("health", {"errors": []})
    assert contract.check("health", [])
    assert contract.check("deliberate/observables",
                          {"data": {"judgements": {"count": 0, "docs": []}}})
    assert contract.check("observe/observables", {"data": {"things": []}})
    assert contract.check("observe/observables", {"data": []})
    judgement = {"id": "transient:j", "type": "judgement", "schema_version": "1",
                 "source": "s", "observable": OBSERVABLES[0], "disposition": 2,
                 "disposition_name": "Clean", "priority": 85, "confidence": "High",
                 "severity": "High", "valid_time": {"start_time": "2026-01-02T00:00:00Z",
                                                    "end_time": "2026-01-01T00:00:00Z"}}
    problems = contract.check("observe/observables",
                              {"data": {"judgements": {"count": 1, "docs": [judgement]}}},
                              OBSERVABLES[1:], limit=0)
    assert any("disposition_name" in p for p in problems)
    assert any("start_time after end_time" in p for p in problems)
    assert any("unrequested" in p for p in problems)
    assert any("entities limit" in p for p in problems)
    respond = {"data": [{"id": "a", "title": "t", "description": "d", "categories": ["c"],
                         "query-params": {"observable_type": "ip", "observable_value": 1}}]}
    assert any("not a string" in p for p in contract.check("respond/observables", respond))
    assert contract.check("refer/observables", {"data": {}})


def test_lambda_without_secret_key(relay, misp, relay_env):
    relay_env.delenv("SECRET_KEY")
    status, out, _ = run(f"{relay}/misp", make_token(misp.module.CLAIMS))
    assert status == 1 and "set the SECRET_KEY environment variable on the Lambda" in out


@pytest.mark.parametrize("message, hint", [
    ("SECRET_KEY is too short: it must be", "too short"),
    ("kid from JWT header not found in API response", "custom_jwks_host"),
    ("Failed to decode JWT with provided key. Make sure domain in custom_jwks_host "
     "corresponds to your SecureX instance region.", "RELAY_JWKS_HOSTS"),
    ("Wrong configuration-token-audience", "RELAY_PUBLIC_URLS"),
    ("this JWT is for the 'otx' module, not 'misp'", "another provider"),
    ("JWT has expired", "mint a new one"),
    ("something new", "rejected the token"),
])
def test_auth_hints(message, hint):
    assert hint in check.auth_hint(message, minted=False)


def test_default_observables_are_the_repository_list(relay, misp, capsys):
    assert check.main([f"{relay}/misp", "--token", make_token(misp.module.CLAIMS),
                       "--timeout", "10"]) == 0
    assert "OK: 6 routes" in capsys.readouterr().out


def test_partial_data_with_errors_is_reported(relay, use_emulator):
    """One observable's upstream call fails: data for the others, the error
    listed, exit non-zero."""
    emulator = use_emulator("cyberprotect")
    emulator.fail["login-verify.example.net"] = 503
    status, out, _ = run(f"{relay}/cyberprotect", make_token({}), OBSERVABLES[:2])
    assert status == 1
    observe = next(line for line in out.splitlines() if line.startswith("observe/"))
    assert "verdicts 1" in observe and observe.split()[4] == "1"  # one problem
    assert "service unavailable" in out and "login-verify.example.net" in out
