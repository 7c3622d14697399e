"""One JSON log line per request, one line per upstream failure, EMF metrics
on stdout, and no secret anywhere in what the relay writes."""
import logging

import pytest

from api import telemetry
from tests.conftest import SECRET, bearer, make_token
from tests.telemetry_check import emf_problems, split_output

OBS = [{"type": "ip", "value": "198.51.100.23"},
       {"type": "domain", "value": "login-verify.example.net"},
       {"type": "email", "value": "nobody@example.org"},
       {"type": "ip", "value": "198.51.100.23"}]


@pytest.fixture
def misp(use_emulator):
    return use_emulator("misp")


def test_one_line_per_request_with_the_fields(client, misp, capsys):
    headers = {**bearer(misp.module.CLAIMS), "X-Request-Id": "op-1234"}
    body = client.post("/misp/observe/observables", json=OBS, headers=headers,
                       query_string={"key": "leak"}).get_json()
    out = capsys.readouterr().out
    requests, failures, metrics = split_output(out)
    assert len(requests) == 1 and not failures
    line = requests[0]
    assert line["request_id"] == "op-1234"
    assert (line["provider"], line["route"], line["status"]) == (
        "misp", "observe/observables", 200)
    assert line["outcome"] == "ok"
    assert (line["observables_in"], line["observables_supported"]) == (4, 3)
    assert line["upstream_calls"] == misp.calls >= 1
    assert line["upstream_ms"] > 0 and line["cache_hits"] == 0
    assert line["entities"] == {k: v["count"] for k, v in body["data"].items()}
    assert line["errors"] == {}
    assert line["duration_ms"] >= line["upstream_ms"] / 64
    assert "observables" not in line and "198.51.100.23" not in out
    assert "leak" not in out  # never the query string
    doc = metrics[0]
    assert (doc["provider"], doc["route"], doc["Requests"], doc["Errors"]) == (
        "misp", "observe/observables", 1, 0)
    assert doc["UpstreamCalls"] == misp.calls
    assert len(doc["UpstreamLatency"]) == misp.calls
    assert doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "TrIntelRelay"
    assert doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["provider", "route"]]


def test_observable_values_only_when_asked(client, misp, capsys, relay_env):
    relay_env.setenv("RELAY_LOG_OBSERVABLES", "true")
    client.post("/misp/deliberate/observables", json=OBS[:2],
                headers=bearer(misp.module.CLAIMS))
    line = split_output(capsys.readouterr().out)[0][0]
    assert line["observables"] == OBS[:2]


def test_upstream_failures_errors_by_code_and_metrics(client, misp, capsys, relay_env):
    misp.fail["*"] = 503
    client.post("/misp/observe/observables", json=OBS, headers=bearer(misp.module.CLAIMS))
    requests, failures, metrics = split_output(capsys.readouterr().out)
    line = requests[0]
    assert line["outcome"] == "error"
    assert line["errors"] == {"service unavailable": 1}
    assert failures and all(
        (f["provider"], f["status"], f["code"]) == ("MISP", 503, "service unavailable")
        and f["time_ms"] >= 0 and f["request_id"] == line["request_id"] for f in failures)
    assert len(failures) == line["upstream_calls"]
    by_code = [d for d in metrics if "code" in d]
    assert by_code == [dict(by_code[0], code="service unavailable", Errors=1)]
    assert by_code[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [
        ["provider", "route", "code"]]
    assert metrics[0]["Errors"] == 1


def test_transport_failure_is_one_line(client, relay_env, capsys):
    relay_env.setenv("API_URL", "http://127.0.0.1:9")
    client.post("/misp/health", headers=bearer({"key": "k"}))
    _, failures, _ = split_output(capsys.readouterr().out)
    assert failures[0]["status"] is None
    assert failures[0]["code"] == "service unavailable"


def test_levels_and_switches(client, misp, capsys, relay_env):
    relay_env.setenv("RELAY_LOG_LEVEL", "WARNING")
    misp.fail["*"] = 500
    client.post("/misp/health", headers=bearer(misp.module.CLAIMS))
    requests, failures, metrics = split_output(capsys.readouterr().out)
    assert not requests and failures and metrics
    relay_env.setenv("RELAY_METRICS", "false")
    client.post("/misp/health", headers=bearer(misp.module.CLAIMS))
    requests, failures, metrics = split_output(capsys.readouterr().out)
    assert not requests and failures and not metrics
    relay_env.setenv("RELAY_LOG_LEVEL", "ERROR")
    client.post("/misp/health", headers=bearer(misp.module.CLAIMS))
    assert capsys.readouterr().out == ""
    relay_env.setenv("RELAY_LOG_LEVEL", "nonsense")  # falls back to INFO
    client.post("/version")
    assert split_output(capsys.readouterr().out)[0]


def test_request_ids_and_routes_without_context(client, capsys):
    client.post("/version", headers={"X-Request-Id": "bad id with spaces"})
    client.post("/health")  # no token
    client.get("/nowhere")
    client.post("/version", environ_overrides={
        "lambda.event": {"requestContext": {"requestId": "apigw-7"}}},
        headers={"X-Request-Id": "ignored"})
    lines = split_output(capsys.readouterr().out)[0]
    assert len(lines[0]["request_id"]) == 32 and lines[0]["route"] == "version"
    assert lines[1]["errors"] == {"authorization error": 1}
    assert lines[1]["outcome"] == "error" and lines[1]["provider"] == "misp"
    assert (lines[2]["route"], lines[2]["status"], lines[2]["outcome"]) == (
        "unmatched", 404, "error")
    assert lines[2]["errors"] == {"not found": 1}
    assert lines[3]["request_id"] == "apigw-7"


def test_reporting_failure_never_breaks_the_answer(client, capsys, monkeypatch):
    def broken(*args):
        raise RuntimeError("boom")
    monkeypatch.setattr(telemetry, "_report", broken)
    assert client.post("/version").status_code == 200
    assert "telemetry failed" in capsys.readouterr().out


def test_relay_logger_has_its_own_level_under_a_warning_root(client, capsys):
    root = logging.getLogger()
    previous = root.level
    root.setLevel(logging.WARNING)  # what Zappa's log_level WARNING does
    try:
        client.post("/version")
    finally:
        root.setLevel(previous)
    assert split_output(capsys.readouterr().out)[0]


def test_no_secret_in_any_output(client, misp, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    claims = dict(misp.module.CLAIMS)
    token = make_token(claims)
    wrong = make_token(claims, secret="q" * 64)
    for route in ("health", "observe/observables", "deliberate/observables",
                  "refer/observables", "respond/observables"):
        client.post(f"/misp/{route}", json=OBS, headers={"Authorization": f"Bearer {token}"})
    misp.fail["*"] = 401
    client.post("/misp/observe/observables", json=OBS,
                headers={"Authorization": f"Bearer {token}"})
    client.post("/misp/observe/observables", json=OBS,
                headers={"Authorization": f"Bearer {wrong}"})
    captured = capsys.readouterr()
    written = captured.out + captured.err + caplog.text
    assert split_output(captured.out)[0]
    for secret in [token, wrong, SECRET, *claims.values()]:
        assert secret not in written


def test_emf_checker_rejects_bad_documents():
    good = telemetry.emf({"provider": "misp", "route": "health"}, {"Requests": 1})
    assert emf_problems(good) == []
    assert emf_problems({"Requests": 1})
    assert emf_problems(dict(good, provider=3))
    assert emf_problems(dict(good, Requests="1"))
    assert emf_problems(dict(good, Requests=list(range(101))))
