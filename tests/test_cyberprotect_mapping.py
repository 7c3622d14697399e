"""Threatscore mapping as pure functions: score bands, newest score, judgements,
the real recorded responses of ../shared/provider-samples/cyberprotect."""
import math

import pytest

from api import ctim
from api.bundle import Bundle
from api.errors import UnexpectedResponseError
from api.providers.cyberprotect import mapping
from tests import ctim_check, samples

IP = {"type": "ip", "value": "1.1.1.1"}
URI = "https://threatscore.cyberprotect.cloud/search?query=1.1.1.1"
CLEAN, SUSPICIOUS, MALICIOUS = ctim.CLEAN, ctim.SUSPICIOUS, ctim.MALICIOUS


def assert_bundle_valid(docs, requested=(IP,), limit=None):
    bundle = Bundle()
    bundle.extend(docs)
    ctim_check.assert_valid("/observe/observables", {"data": bundle.json()},
                            [dict(o) for o in requested], limit)


def entry(date, score, details=(), level=None):
    return {"date": date, "score": score, "confidence": None, "level": level,
            "details": list(details)}


def detail(engine, score, date="2024-05-01T08:00:00.000Z"):
    return {"date": date, "engineId": engine, "engineConfidence": None,
            "level": None, "score": score}


def split(docs):
    verdicts = [d for d in docs if d["type"] == "verdict"]
    judgements = [d for d in docs if d["type"] == "judgement"]
    return verdicts, judgements


# --- score bands ---------------------------------------------------------------

@pytest.mark.parametrize("score, expected", [
    (0, CLEAN),
    (0.0, CLEAN),
    (0.25, CLEAN),
    (0.2505, SUSPICIOUS),     # Cisco's relay: no band, HTTP 500
    (0.251, SUSPICIOUS),
    (0.5, SUSPICIOUS),
    (0.5005, MALICIOUS),      # Cisco's relay: no band, HTTP 500
    (0.501, MALICIOUS),
    (1, MALICIOUS),
    (1.0, MALICIOUS),
    (1.5, MALICIOUS),         # above the documented range: clamped
    (-0.1, CLEAN),            # negative: Clean, as Cisco's relay decided
    (-7, CLEAN),
    (0.25 + 1e-12, SUSPICIOUS),
    (0.5 + 1e-12, MALICIOUS),
    (None, None),
    ("0.3", None),
    (True, None),
    (math.nan, None),
    (math.inf, None),
    ([], None),
], ids=repr)
def test_score_bands(score, expected):
    assert mapping.disposition(score) == expected


def test_bands_have_no_gap_between_0_and_1():
    steps = [i / 100000 for i in range(-1000, 101001)]
    results = [mapping.disposition(s) for s in steps]
    assert None not in results
    # Monotonic: Clean, then Suspicious, then Malicious.
    order = {CLEAN: 0, SUSPICIOUS: 1, MALICIOUS: 2}
    ranks = [order[r] for r in results]
    assert ranks == sorted(ranks)


# --- real samples --------------------------------------------------------------

def test_real_hit_sample():
    document = samples.load("cyberprotect", "score_ip_1.1.1.1_suspicious.json")
    docs = mapping.map_score(IP, document, URI, 100)
    verdicts, judgements = split(docs)
    assert_bundle_valid(docs)

    [verdict] = verdicts
    overall, *engines = judgements
    assert verdict["disposition"] == SUSPICIOUS
    assert verdict["disposition_name"] == "Suspicious"
    assert verdict["observable"] == IP
    assert verdict["valid_time"] == {"start_time": "2020-04-03T10:15:17Z",
                                     "end_time": "2020-04-10T10:15:17Z"}
    assert verdict["judgement_id"] == overall["id"]
    assert overall["disposition"] == SUSPICIOUS
    assert overall["priority"] == mapping.OVERALL_PRIORITY
    assert overall["reason"] == "Threatscore score 0.3397 (suspicious)"

    details = document["scores"][0]["details"]
    assert [j["reason"] for j in engines] == [f"Engine: {d['engineId']}" for d in details]
    # Engine scores 0, 0.9, 0.5 and 0.175.
    assert [j["disposition"] for j in engines] == [CLEAN, MALICIOUS, SUSPICIOUS, CLEAN]
    for judgement in judgements:
        assert judgement["source"] == "Threatscore Cyberprotect"
        assert judgement["source_uri"] == URI
        assert judgement["confidence"] == "Medium" and judgement["severity"] == "Medium"
        assert judgement["valid_time"] == verdict["valid_time"]
    assert {j["priority"] for j in engines} == {mapping.ENGINE_PRIORITY}
    # CTIM's own choice among the judgements agrees with the verdict.
    assert ctim.best_judgement(judgements)["id"] == verdict["judgement_id"]


@pytest.mark.parametrize("limit, engines", [(1, 0), (2, 1), (3, 2), (5, 4), (100, 4)])
def test_real_hit_sample_entities_limit(limit, engines):
    document = samples.load("cyberprotect", "score_ip_1.1.1.1_suspicious.json")
    docs = mapping.map_score(IP, document, URI, limit)
    verdicts, judgements = split(docs)
    assert len(verdicts) == 1 and len(judgements) == 1 + engines
    assert verdicts[0]["judgement_id"] == judgements[0]["id"]
    assert_bundle_valid(docs, limit=limit)


def test_real_hit_sample_deliberate_verdict_names_no_judgement():
    document = samples.load("cyberprotect", "score_ip_1.1.1.1_suspicious.json")
    [verdict] = mapping.map_score(IP, document, URI, 100, judgements=False)
    assert verdict["type"] == "verdict" and verdict["disposition"] == SUSPICIOUS
    assert "judgement_id" not in verdict
    assert_bundle_valid([verdict])


def test_real_unknown_sample_is_no_data():
    document = samples.load("cyberprotect", "score_ip_127.0.0.100_unknown_health.json")
    observable = {"type": "ip", "value": "127.0.0.100"}
    assert mapping.map_score(observable, document, URI, 100) == []


@pytest.mark.parametrize("name", ["error_404_not_found.json", "error_500_internal.json"])
def test_real_error_samples_are_not_score_documents(name):
    with pytest.raises(UnexpectedResponseError, match="no 'scores' list"):
        mapping.map_score(IP, samples.load("cyberprotect", name), URI, 100)


# --- several scores, one verdict -------------------------------------------------

def test_one_verdict_from_the_newest_score_whatever_the_order():
    document = {"scores": [
        entry("2024-04-01T00:00:00.000Z", 0.9, [detail("old", 0.9)]),
        entry("2024-05-01T08:00:00.000Z", 0.1, [detail("new", 0.1)]),
        entry("2024-04-20T00:00:00.000Z", 0.4),
    ]}
    docs = mapping.map_score(IP, document, URI, 100)
    verdicts, judgements = split(docs)
    assert len(verdicts) == 1
    assert verdicts[0]["disposition"] == CLEAN
    assert verdicts[0]["valid_time"]["start_time"] == "2024-05-01T08:00:00Z"
    # Overall judgement, then engines from the newest entry to the oldest.
    assert [j["reason"] for j in judgements] == [
        "Threatscore score 0.1", "Engine: new", "Engine: old"]
    assert_bundle_valid(docs)


def test_newest_score_without_a_number_falls_back_to_an_older_one():
    document = {"scores": [
        [],
        entry("2024-05-02T00:00:00.000Z", None, [detail("e1", 0.7)]),
        entry("2024-05-01T00:00:00.000Z", 0.45),
    ]}
    docs = mapping.map_score(IP, document, URI, 100)
    verdicts, judgements = split(docs)
    assert verdicts[0]["disposition"] == SUSPICIOUS
    assert verdicts[0]["valid_time"]["start_time"] == "2024-05-01T00:00:00Z"
    assert [j["disposition"] for j in judgements] == [SUSPICIOUS, MALICIOUS]
    assert_bundle_valid(docs)


def test_no_numeric_score_means_no_verdict_but_engine_judgements_stay():
    document = {"scores": [entry("2024-05-01T00:00:00.000Z", None,
                                 [detail("e1", 0.2), detail("e2", None)])]}
    docs = mapping.map_score(IP, document, URI, 100)
    verdicts, judgements = split(docs)
    assert verdicts == []
    assert [j["reason"] for j in judgements] == ["Engine: e1"]


def test_equal_dates_keep_the_provider_order():
    document = {"scores": [entry("2024-05-01T00:00:00Z", 0.6),
                           entry("2024-05-01T00:00:00Z", 0.1)]}
    [verdict, overall] = mapping.map_score(IP, document, URI, 100)
    assert verdict["disposition"] == MALICIOUS == overall["disposition"]


def test_out_of_range_scores_are_explicit():
    document = {"scores": [entry("2024-05-01T00:00:00Z", 1.5, [detail("hi", 2.0),
                                                               detail("lo", -0.5)])]}
    docs = mapping.map_score(IP, document, URI, 100)
    verdicts, judgements = split(docs)
    assert verdicts[0]["disposition"] == MALICIOUS
    assert [j["disposition"] for j in judgements] == [MALICIOUS, MALICIOUS, CLEAN]
    assert_bundle_valid(docs)


def test_engine_details_use_their_own_date_or_the_score_date():
    document = {"scores": [entry("2024-05-01T00:00:00Z", 0.3, [
        {"engineId": "undated", "score": 0.3},
        detail("dated", 0.3, "2024-04-28T12:00:00.500Z"),
    ])]}
    _, _, undated, dated = mapping.map_score(IP, document, URI, 100)
    assert undated["valid_time"] == {"start_time": "2024-05-01T00:00:00Z",
                                     "end_time": "2024-05-08T00:00:00Z"}
    assert dated["valid_time"] == {"start_time": "2024-04-28T12:00:00Z",
                                   "end_time": "2024-05-05T12:00:00Z"}


def test_odd_details_are_skipped_and_long_engine_names_clipped():
    document = {"scores": [entry("2024-05-01T00:00:00Z", 0.3, [
        [], "x", detail("", None), detail("e" * 2000, 0.3)])]}
    docs = mapping.map_score(IP, document, URI, 100)
    _, judgements = split(docs)
    assert len(judgements) == 2
    assert len(judgements[1]["reason"]) == mapping.REASON_MAX
    assert_bundle_valid(docs)


def test_ipv6_and_domain_observables_are_kept_as_requested():
    for observable in ({"type": "ipv6", "value": "2001:db8::1"},
                       {"type": "domain", "value": "Example.COM"}):
        document = {"scores": [entry("2024-05-01T00:00:00Z", 0.3, [detail("e", 0.9)])]}
        docs = mapping.map_score(observable, document, URI, 100)
        assert all(d["observable"] == observable for d in docs)
        assert_bundle_valid(docs, requested=(observable,))


# --- malformed answers -----------------------------------------------------------

@pytest.mark.parametrize("document, message", [
    ([], "not a JSON object"),
    ("text", "not a JSON object"),
    ({}, "no 'scores' list"),
    ({"scores": None}, "no 'scores' list"),
    ({"scores": {"score": 0.3}}, "no 'scores' list"),
    ({"scores": [{"score": 0.3}]}, "without a readable 'date'"),
    ({"scores": [entry("yesterday", 0.3)]}, "without a readable 'date'"),
    ({"scores": [entry("2024-05-01T00:00:00Z", 0.3, ["a"]) | {"details": "a"}]},
     "'details' field that is not a list"),
    ({"scores": [entry("2024-05-01T00:00:00Z", 0.3, [{"score": 0.3}])]},
     "without 'engineId'"),
    ({"scores": [entry("2024-05-01T00:00:00Z", 0.3, [detail("e", 0.3, "soon")])]},
     "unreadable date"),
], ids=["list", "string", "empty", "null scores", "scores object", "no date",
        "bad date", "details string", "no engine", "bad detail date"])
def test_malformed_answers_raise_unexpected_response(document, message):
    with pytest.raises(UnexpectedResponseError, match=message):
        mapping.map_score(IP, document, URI, 100)
