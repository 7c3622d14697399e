"""The cyberprotect module over real HTTP: relay routes → loopback Threatscore
emulator. Every body goes through the validating `client` fixture."""
import json
import pathlib

import pytest

from api import providers
from api.tools import cli
from tests import ctim_check, samples
from tests.conftest import bearer

AUTH = bearer({})          # Threatscore needs no credential: payload {}
ROOT = pathlib.Path(__file__).resolve().parents[1]
DEMO = json.loads((ROOT / "observables.json").read_text())
GOOD = {"type": "ip", "value": "198.51.100.23"}
BAD = {"type": "domain", "value": "broken.example.org"}


@pytest.fixture
def emu(use_emulator):
    return use_emulator("cyberprotect")


def post(client, route, observables, headers=AUTH):
    response = client.post(f"/cyberprotect/{route}", json=observables, headers=headers)
    assert response.status_code == 200
    return response.get_json()


def docs(body, key):
    return body.get("data", {}).get(key, {}).get("docs", [])


def by_value(items):
    result = {}
    for item in items:
        result.setdefault(item["observable"]["value"], []).append(item)
    return result


def score_document(*entries):
    """A Threatscore score document (wire format) with the given score entries."""
    return {"data": "x", "types": ["domain"], "signature": "0" * 64, "scores": [
        {"date": date, "score": score, "confidence": None, "level": None,
         "details": [{"date": date, "engineId": f"engine-{i}", "engineConfidence": None,
                      "level": None, "score": s} for i, s in enumerate(details)]}
        for date, score, details in entries]}


def single_error(body):
    [error] = body["errors"]
    assert error["type"] == "fatal"
    return error


# --- declaration and auth ------------------------------------------------------

def test_declaration():
    provider = providers.get("cyberprotect")
    assert provider.title == "Threatscore | Cyberprotect"
    assert provider.source == "Threatscore Cyberprotect"
    assert provider.supported_types == {"ip", "ipv6", "domain"}
    assert provider.credential_claims == ()
    assert set(provider.capabilities) == {"health", "observe", "deliberate", "refer"}


def test_jwt_dev_mints_without_prompting():
    def ask(prompt):
        raise AssertionError(f"prompted: {prompt}")

    name, prompts = cli.module_definition({}, "cyberprotect")
    assert "Threatscore | Cyberprotect" in name
    assert cli.prompt_claims(prompts, ask=ask) == {}


def test_empty_payload_token_is_accepted(client, emu):
    body = post(client, "observe/observables", [GOOD])
    assert "errors" not in body and len(docs(body, "verdicts")) == 1


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-jwt"},
                                     bearer({}, secret="another-secret-" + "y" * 40)],
                         ids=["no token", "garbage", "wrong key"])
@pytest.mark.parametrize("route", ["observe/observables", "deliberate/observables",
                                   "refer/observables", "health"])
def test_tokens_are_required(client, emu, headers, route):
    body = post(client, route, [GOOD], headers=headers)
    assert single_error(body)["code"] == "authorization error"
    assert "data" not in body
    assert emu.calls == 0


def test_unprefixed_routes_serve_relay_provider(client, emu, relay_env):
    relay_env.setenv("RELAY_PROVIDER", "cyberprotect")
    response = client.post("/deliberate/observables", json=[GOOD], headers=AUTH)
    assert docs(response.get_json(), "verdicts")[0]["disposition"] == 2


# --- observe / deliberate --------------------------------------------------------

def test_observe_demo_observables(client, emu):
    body = post(client, "observe/observables", DEMO)
    assert "errors" not in body
    verdicts = by_value(docs(body, "verdicts"))
    judgements = by_value(docs(body, "judgements"))
    assert {v: d[0]["disposition"] for v, d in verdicts.items()} == {
        "198.51.100.23": 2, "2001:db8:bad::23": 3, "login-verify.example.net": 2}
    assert set(judgements) == set(verdicts)          # nothing for 192.0.2.200
    for value, [verdict] in verdicts.items():
        linked = [j for j in judgements[value] if j["id"] == verdict["judgement_id"]]
        assert linked and linked[0]["disposition"] == verdict["disposition"]
        engines = [j for j in judgements[value] if j["reason"].startswith("Engine: ")]
        assert engines and len(engines) == len(judgements[value]) - 1
    # Only supported types reach Threatscore: 3 with data + 192.0.2.200.
    assert emu.calls == 4
    assert sorted(r["path"] for r in emu.requests) == sorted(
        f"/api/score/{o['value']}" for o in DEMO if o["type"] in ("ip", "ipv6", "domain"))


def test_deliberate_answers_verdicts_only(client, emu):
    body = post(client, "deliberate/observables", DEMO)
    assert set(body["data"]) == {"verdicts"}
    assert len(docs(body, "verdicts")) == 3
    assert all("judgement_id" not in v for v in docs(body, "verdicts"))


def test_one_verdict_per_observable_from_the_newest_of_several_scores(client, emu):
    # The emulator lists login-verify.example.net's history oldest first.
    observable = {"type": "domain", "value": "login-verify.example.net"}
    body = post(client, "observe/observables", [observable])
    [verdict] = docs(body, "verdicts")
    assert verdict["disposition"] == 2
    starts = sorted(j["valid_time"]["start_time"] for j in docs(body, "judgements"))
    assert verdict["valid_time"]["start_time"] == starts[-1]
    # 3 score entries with 2 + 3 + 5 engine details, plus the overall judgement.
    assert len(docs(body, "judgements")) == 11


def test_several_scores_served_in_any_order(client, emu):
    emu.options["responses"] = {BAD["value"]: (200, score_document(
        ("2024-01-01T00:00:00.000Z", 0.9, [0.9]),
        ("2024-03-01T00:00:00.000Z", 0.2, [0.1, 0.6]),
        ("2024-02-01T00:00:00.000Z", 0.45, []),
    ))}
    body = post(client, "observe/observables", [BAD])
    [verdict] = docs(body, "verdicts")
    assert verdict["disposition"] == 1
    assert verdict["valid_time"] == {"start_time": "2024-03-01T00:00:00Z",
                                     "end_time": "2024-03-08T00:00:00Z"}
    assert len(docs(body, "judgements")) == 4


BANDS = [(0, 1), (0.25, 1), (0.2505, 3), (0.251, 3), (0.5, 3), (0.5005, 2),
         (0.501, 2), (1, 2), (1.5, 2), (-0.2, 1), (None, None)]


@pytest.mark.parametrize("route", ["observe/observables", "deliberate/observables"])
def test_score_bands_over_http(client, emu, route):
    values = {f"band-{i}.example.org": case for i, case in enumerate(BANDS)}
    emu.options["responses"] = {
        value: (200, score_document(("2024-05-01T00:00:00.000Z", score, [score])))
        for value, (score, _) in values.items()}
    requested = [{"type": "domain", "value": v} for v in values]
    body = post(client, route, requested)
    assert "errors" not in body
    got = {v["observable"]["value"]: v["disposition"] for v in docs(body, "verdicts")}
    assert got == {v: d for v, (_, d) in values.items() if d is not None}


def test_entities_limit_per_observable(client, emu):
    limit = 2
    observables = [o for o in DEMO if o["type"] in ("ip", "ipv6", "domain")]
    response = client.post("/cyberprotect/observe/observables", json=observables,
                           headers=bearer({"CTR_ENTITIES_LIMIT": limit}))
    body = response.get_json()
    ctim_check.assert_valid("/observe/observables", body, observables, limit=limit)
    judgements = by_value(docs(body, "judgements"))
    assert {len(j) for j in judgements.values()} == {limit}
    for verdict in docs(body, "verdicts"):
        assert verdict["judgement_id"] in {
            j["id"] for j in judgements[verdict["observable"]["value"]]}


def test_values_are_encoded_as_one_path_segment(client, emu):
    odd = {"type": "domain", "value": "evil.example/../admin?x=1#frag"}
    ipv6 = {"type": "ipv6", "value": "2001:db8:bad::23"}
    body = post(client, "observe/observables", [odd, ipv6])
    assert "errors" not in body
    paths = {r["path"]: r["args"] for r in emu.requests}
    assert paths == {"/api/score/evil.example/../admin?x=1#frag": {},
                     "/api/score/2001:db8:bad::23": {}}


def test_blank_and_dot_values_are_not_sent(client, emu):
    body = post(client, "observe/observables", [{"type": "domain", "value": ".."},
                                                {"type": "domain", "value": " "},
                                                {"type": "url", "value": "http://x/"}])
    assert body == {"data": {}}
    assert emu.calls == 0


# --- refer -------------------------------------------------------------------------

def test_refer_links_without_upstream_call(client, emu):
    observables = [GOOD, {"type": "ipv6", "value": "2001:db8::1"},
                   {"type": "domain", "value": "a b/c?d&e"},
                   {"type": "sha256", "value": "f" * 64}]
    body = post(client, "refer/observables", observables)
    assert emu.calls == 0
    links = {link["id"]: link for link in body["data"]}
    assert set(links) == {"ref-cyberprotect-search-ip-198.51.100.23",
                          "ref-cyberprotect-search-ipv6-2001%3Adb8%3A%3A1",
                          "ref-cyberprotect-search-domain-a%20b%2Fc%3Fd%26e"}
    odd = links["ref-cyberprotect-search-domain-a%20b%2Fc%3Fd%26e"]
    assert odd["url"] == ("https://threatscore.cyberprotect.cloud/search"
                          "?query=a%20b%2Fc%3Fd%26e")
    assert odd["title"] == "Search for this domain"
    assert odd["description"] == "Lookup this domain on Threatscore | Cyberprotect"
    assert odd["categories"] == ["Search", "Threatscore | Cyberprotect"]


def test_refer_and_source_uri_follow_the_ui_setting(client, emu, relay_env):
    relay_env.setenv("CYBERPROTECT_UI_URL", "https://console.threatscore.example/")
    refer = post(client, "refer/observables", [GOOD])
    observe = post(client, "observe/observables", [GOOD])
    expected = "https://console.threatscore.example/search?query=198.51.100.23"
    assert refer["data"][0]["url"] == expected
    assert {j["source_uri"] for j in docs(observe, "judgements")} == {expected}


# --- health --------------------------------------------------------------------------

def test_health_ok_with_the_old_unknown_form(client, emu):
    assert post(client, "health", None) == {"data": {"status": "ok"}}
    assert [r["path"] for r in emu.requests] == ["/api/score/127.0.0.100"]


def test_health_ok_when_the_probe_is_not_found(client, emu):
    emu.options["responses"] = {"127.0.0.100": (
        404, {"error": {"message": "Observable not found"}})}
    assert post(client, "health", None) == {"data": {"status": "ok"}}


@pytest.mark.parametrize("status, code", [(503, "service unavailable"),
                                          (500, "service unavailable"),
                                          (404, "not found"),
                                          (429, "too many requests")])
def test_health_failures(client, emu, status, code):
    emu.fail = {"127.0.0.100": status}
    assert single_error(post(client, "health", None))["code"] == code


def test_health_unreachable(client, emu, relay_env):
    relay_env.setenv("CYBERPROTECT_API_URL", "http://127.0.0.1:9")
    error = single_error(post(client, "health", None))
    assert error["code"] == "service unavailable"
    assert "Threatscore | Cyberprotect" in error["message"]


# --- upstream errors, partial results -------------------------------------------------

def partial(client, emu, route="observe/observables"):
    """Observe GOOD and BAD; GOOD's data must survive BAD's error."""
    body = post(client, route, [GOOD, BAD])
    assert [v["observable"] for v in docs(body, "verdicts")] == [GOOD]
    error = single_error(body)
    assert error["message"].startswith(f"domain {BAD['value']}: ")
    return error


def test_unknown_observable_is_no_data(client, emu):
    body = post(client, "observe/observables", [GOOD, BAD])
    assert "errors" not in body
    assert [v["observable"] for v in docs(body, "verdicts")] == [GOOD]


@pytest.mark.parametrize("body", [{"error": {"message": "Observable not found"}},
                                  {"error": "observable NOT found (value: x)"},
                                  "Observable not found"],
                         ids=["documented", "string error", "plain text"])
def test_not_found_observable_forms_are_no_data(client, emu, body):
    emu.options["responses"] = {BAD["value"]: (404, body)}
    body = post(client, "observe/observables", [GOOD, BAD])
    assert "errors" not in body
    assert len(docs(body, "verdicts")) == 1


def test_wrong_url_404_is_not_found(client, emu):
    emu.fail = {BAD["value"]: 404}
    error = partial(client, emu)
    assert error["code"] == "not found"
    assert "CYBERPROTECT_API_URL" in error["message"]


def test_wrong_base_url_is_not_found(client, emu, relay_env):
    relay_env.setenv("CYBERPROTECT_API_URL", emu.url + "/v9")
    error = single_error(post(client, "observe/observables", [GOOD]))
    assert error["code"] == "not found"


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_service_unavailable(client, emu, status):
    emu.fail = {BAD["value"]: status}
    error = partial(client, emu)
    assert error["code"] == "service unavailable"
    assert f"HTTP {status}" in error["message"]


def test_other_client_errors_keep_the_upstream_message(client, emu):
    emu.fail = {BAD["value"]: 400}
    error = partial(client, emu, "deliberate/observables")
    assert error["code"] == "unexpected response"
    assert "HTTP 400: Request refused (400)" in error["message"]


def test_rate_limit_is_too_many_requests_and_stops_further_calls(client, emu):
    emu.fail = {BAD["value"]: 429}
    emu.options["retry_after"] = "30"
    body = post(client, "observe/observables", [BAD])
    error = single_error(body)
    assert error["code"] == "too many requests"
    assert "retry in 30 s" in error["message"]
    calls = emu.calls
    # The gate is closed: the next request fails fast, without calling.
    again = single_error(post(client, "observe/observables", [GOOD]))
    assert again["code"] == "too many requests"
    assert emu.calls == calls


def test_emulator_rate_limit_knob(client, emu):
    emu.rate_limit = 0
    error = single_error(post(client, "deliberate/observables", [GOOD]))
    assert error["code"] == "too many requests"


def slow_bad_value(emu, relay_env):
    relay_env.setenv("RELAY_HTTP_TIMEOUT", "0.2")
    emu.options["responses"] = {BAD["value"]: (200, score_document(
        ("2024-05-01T00:00:00Z", 0.9, [])))}
    emu.options["latency"] = {BAD["value"]: 0.6}


def test_timeout_is_reported_as_a_timeout(client, emu, relay_env):
    slow_bad_value(emu, relay_env)
    error = partial(client, emu)
    assert error["code"] == "request timeout", error


@pytest.mark.parametrize("status, body, code, text", [
    (200, "<html>maintenance</html>", "unexpected response", "not JSON"),
    (200, ["a", "list"], "unexpected response", "not a score object"),
    (200, {"data": "broken.example.org", "types": ["domain"]}, "unexpected response",
     "no 'scores' list"),
    (200, {"scores": [{"score": 0.3}]}, "unexpected response", "readable 'date'"),
], ids=["html", "list", "no scores", "no date"])
def test_unreadable_answers_keep_the_others(client, emu, status, body, code, text):
    emu.options["responses"] = {BAD["value"]: (status, body)}
    error = partial(client, emu)
    assert error["code"] == code
    assert text in error["message"]


# --- the real recorded answers, served from ../shared in place -------------------------

@pytest.mark.parametrize("name, status, code", [
    ("error_404_not_found.json", 404, "not found"),
    ("error_500_internal.json", 500, "service unavailable"),
])
def test_real_error_answers(client, emu, name, status, code):
    emu.options["responses"] = {BAD["value"]: (status, samples.load("cyberprotect", name))}
    error = partial(client, emu)
    assert error["code"] == code


def test_real_hit_and_unknown_answers(client, emu):
    hit = samples.load("cyberprotect", "score_ip_1.1.1.1_suspicious.json")
    unknown = samples.load("cyberprotect", "score_ip_127.0.0.100_unknown_health.json")
    emu.options["responses"] = {"1.1.1.1": (200, hit), BAD["value"]: (200, unknown)}
    body = post(client, "observe/observables",
                [{"type": "ip", "value": "1.1.1.1"}, BAD])
    assert "errors" not in body
    [verdict] = docs(body, "verdicts")
    assert verdict["observable"]["value"] == "1.1.1.1" and verdict["disposition"] == 3
    assert len(docs(body, "judgements")) == 1 + len(hit["scores"][0]["details"])
