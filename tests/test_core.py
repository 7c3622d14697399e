"""Engine, HTTP layer, settings and CTIM helpers."""
import threading
import time

import pytest

from api import ctim, engine, http, ratelimit
from api.bundle import Bundle
from api.context import RequestContext
from api.errors import (InvalidArgumentError, RequestTimeoutError, ServiceUnavailableError,
                        UnexpectedResponseError)
from api.settings import Settings, parse_entities_limit


def context(deadline=5.0, **env):
    settings = Settings.from_env(dict({"RELAY_DEADLINE": str(deadline)}, **env))
    return RequestContext("Test", settings, deadline=time.monotonic() + deadline)


def test_engine_keeps_results_and_errors_side_by_side():
    def fails():
        raise ServiceUnavailableError("down")

    results = engine.run(context(), [("a", lambda: 1), ("b", fails), ("c", lambda: 3)])
    assert [(label, value) for label, value, _ in results] == [("a", 1), ("b", None), ("c", 3)]
    assert isinstance(results[1][2], ServiceUnavailableError)


def test_engine_turns_bugs_into_internal_errors():
    (result,) = engine.run(context(), [("x", lambda: {}["missing"])])
    assert result[2].code == "internal error"
    assert result[2].message == "unexpected error in the relay"  # the caller names "x"


def test_engine_returns_what_finished_at_the_deadline():
    release = threading.Event()
    started = time.monotonic()
    results = engine.run(context(deadline=0.3),
                         [("fast", lambda: "ok"), ("slow", lambda: release.wait(5))])
    elapsed = time.monotonic() - started
    release.set()
    assert elapsed < 1.0
    assert results[0][1] == "ok"
    assert isinstance(results[1][2], RequestTimeoutError)
    assert results[1][2].message == "no answer from Test within the relay's 0.3 s deadline"


def test_engine_runs_tasks_concurrently_within_the_bound():
    active = []
    peak = []
    lock = threading.Lock()

    def task():
        with lock:
            active.append(1)
            peak.append(len(active))
        time.sleep(0.05)
        with lock:
            active.pop()

    started = time.monotonic()
    engine.run(context(RELAY_CONCURRENCY="4"), [(str(i), task) for i in range(8)])
    assert max(peak) == 4
    assert time.monotonic() - started < 0.35


def test_context_timeout_never_exceeds_the_deadline():
    ctx = context(deadline=0.5, RELAY_HTTP_TIMEOUT="8")
    assert ctx.timeout() <= 0.5
    expired = RequestContext("Test", Settings.from_env({}), deadline=time.monotonic() - 1)
    with pytest.raises(RequestTimeoutError, match="deadline passed"):
        expired.timeout()


def test_credential_id_hides_the_credential():
    ctx = RequestContext("Test", Settings.from_env({}), claims={"key": "super-secret"})
    assert "super-secret" not in ctx.credential_id
    other = RequestContext("Test", Settings.from_env({}), claims={"key": "other"})
    assert ctx.credential_id != other.credential_id


class FakeResponse:
    def __init__(self, status, headers=None, text="{}"):
        self.status_code = status
        self.headers = headers or {}
        self._text = text

    def json(self):
        import json

        return json.loads(self._text)


def test_retry_after_and_json_body():
    assert ratelimit.retry_after(FakeResponse(429, {"Retry-After": "12"})) == 12.0
    assert ratelimit.retry_after(FakeResponse(429, {"Retry-After": "soon"}), 5) == 5
    with pytest.raises(UnexpectedResponseError, match="not JSON"):
        http.json_body(FakeResponse(200, text="<html>"), "Test")


def test_request_maps_connection_failures():
    with pytest.raises(ServiceUnavailableError, match="Unable to reach Test"):
        http.request(context(), "Test", "GET", "http://127.0.0.1:9/", session_name="t")


@pytest.mark.parametrize("value,expected", [
    (None, 100), ("", 100), ("abc", 100), ("0", 100), ("-5", 100), ("25", 25),
    (" 7 ", 7), (3, 3), ("2.5", 100)])
def test_entities_limit_parsing(value, expected):
    assert parse_entities_limit(value) == expected


def test_entities_limit_cap():
    assert parse_entities_limit("5000", maximum=1000) == 1000


def test_settings_defaults_and_overrides():
    defaults = Settings.from_env({})
    assert (defaults.http_timeout, defaults.deadline, defaults.concurrency) == (8.0, 20.0, 50)
    assert (defaults.max_body_bytes, defaults.max_observables) == (1024 * 1024, 1000)
    assert defaults.default_provider == "misp"
    assert defaults.secret_key is None
    custom = Settings.from_env({"RELAY_DEADLINE": "5", "RELAY_HTTP_TIMEOUT": "x",
                                "RELAY_PROVIDER": "OTX", "API_URL": "https://m.example/ ",
                                "FLAG": "yes", "OFF": "0", "ODD": "maybe"})
    assert custom.deadline == 5.0 and custom.http_timeout == 8.0
    assert custom.default_provider == "otx"
    assert custom.get_url("API_URL") == "https://m.example"
    assert custom.get_bool("FLAG", False) and not custom.get_bool("OFF", True)
    assert custom.get_bool("ODD", True) is True
    with pytest.raises(TypeError):
        custom.env["API_URL"] = "changed"


def test_verdict_prefers_priority_then_ctim_tie_break():
    obs = {"type": "ip", "value": "1.1.1.1"}
    common = ctim.judgement(obs, ctim.COMMON, "X")
    malicious = ctim.judgement(obs, ctim.MALICIOUS, "X")
    clean = ctim.judgement(obs, ctim.CLEAN, "X", priority=70)
    assert ctim.verdict_for([common, malicious, clean])["judgement_id"] == malicious["id"]
    assert ctim.verdict_for([clean])["disposition_name"] == "Clean"
    assert ctim.verdict_for([]) is None


def test_times_ids_and_tlp():
    assert ctim.parse_time("2026-01-02") == ctim.parse_time("2026-01-02T00:00:00Z")
    assert ctim.iso(ctim.parse_time("1700000000")) == "2023-11-14T22:13:20Z"
    assert ctim.parse_time("not a date") is None and ctim.parse_time(None) is None
    assert ctim.valid_time("sha256")["end_time"] == ctim.FOREVER
    assert ctim.transient_id("indicator", "x") == ctim.transient_id("indicator", "x")
    assert ctim.transient_id("indicator").startswith("transient:indicator-")
    assert ctim.tlp_from_tags(["osint", "TLP:Clear"]) == "white"
    assert ctim.tlp_from_tags(["tlp:amber+strict"]) == "amber"
    assert ctim.tlp_from_tags(["tlp:purple"], "green") == "green"
    assert ctim.clip("  ", 10) is None and len(ctim.clip("x" * 50, 10)) == 10


def test_bundle_dedupes_ids_and_verdicts():
    obs = {"type": "ip", "value": "1.1.1.1"}
    bundle = Bundle()
    indicator = ctim.entity("indicator", id_seed="pulse-1", producer="p",
                            valid_time={"start_time": "2026-01-01T00:00:00Z"})
    bundle.extend([indicator, dict(indicator)])
    judged = ctim.judgement(obs, ctim.MALICIOUS, "X")
    bundle.add(ctim.verdict_for([judged]))
    bundle.add(ctim.verdict_for([ctim.judgement(obs, ctim.CLEAN, "X")]))
    data = bundle.json()
    assert data["indicators"]["count"] == 1
    assert data["verdicts"]["count"] == 1
    assert data["verdicts"]["docs"][0]["disposition"] == ctim.MALICIOUS
    assert not Bundle()


def test_module_settings_come_from_claims_and_are_checked():
    base = Settings.from_env({"MISP_IDS_ONLY": "false", "API_URL": "https://misp.example"})
    module = base.for_module({"MISP_IDS_ONLY": True, "API_URL": "https://evil.example",
                              "key": "k"}, ("MISP_IDS_ONLY",))
    assert module.setting_bool("MISP_IDS_ONLY", False) is True
    assert base.setting_bool("MISP_IDS_ONLY", True) is False
    assert module.get_url("API_URL") == "https://misp.example"   # never from a claim
    assert module.for_module({}, ("X",)) is module
    listed = base.for_module({"ORGS": ["a", " b", "a", ""]}, ("ORGS",))
    assert listed.setting_list("ORGS") == ("a", "b")
    with pytest.raises(InvalidArgumentError, match="MISP_IDS_ONLY.*JWT claim"):
        base.for_module({"MISP_IDS_ONLY": "maybe"}, ("MISP_IDS_ONLY",)).setting_bool(
            "MISP_IDS_ONLY", False)
    with pytest.raises(InvalidArgumentError, match="DAYS.*environment variable"):
        Settings.from_env({"DAYS": "-3"}).setting_int("DAYS", None, minimum=1)
    with pytest.raises(InvalidArgumentError, match="must be a string"):
        base.for_module({"DAYS": {"x": 1}}, ("DAYS",))
    with pytest.raises(InvalidArgumentError, match="one of mark, drop, off"):
        Settings.from_env({"W": "hide"}).setting_choice("W", "mark", ("mark", "drop", "off"))
    dropped = Settings.from_env({"W": " DROP "}).setting_choice("W", "mark", ("mark", "drop"))
    assert dropped == "drop"
    assert Settings.from_env({}).setting_int("DAYS", None) is None


def test_upstream_calls_are_counted_per_request(use_emulator, client):
    emulator = use_emulator("cyberprotect")
    ctx = RequestContext("Test", Settings.from_env({emulator.module.ENV_VAR: emulator.url}))
    http.request(ctx, "T", "GET", emulator.url + "/api/score/1.2.3.4")
    assert ctx.stats.upstream_calls == 1 and ctx.stats.upstream_seconds > 0
