"""The relay contract as code: envelopes, required CTIM fields and the rules
JSON Schema cannot express (count == docs, unique ids, references that
resolve, one verdict per observable, refer/respond ids...).

Used by `jwt check` on a live deployment and by the tests (tests/ctim_check.py
adds the full CTIM JSON Schemas on top). Every function returns a list of
problems, empty when the body is fine.
"""
from collections import Counter
from datetime import datetime

from api.ctim import DISPOSITION_NAMES

# Keys the platform accepts in an observe bundle (ModuleObserveBundle).
BUNDLE_KEYS = frozenset((
    "verdicts", "judgements", "indicators", "sightings", "relationships", "actors",
    "attack_patterns", "campaigns", "coas", "data_tables", "feedbacks",
    "identity_assertions", "incidents", "malwares", "notes", "tools",
    "vulnerabilities", "weaknesses"))
REQUIRED = {
    "verdict": ("type", "disposition", "observable", "valid_time"),
    "judgement": ("id", "type", "schema_version", "source", "observable", "disposition",
                  "disposition_name", "priority", "confidence", "severity", "valid_time"),
    "indicator": ("id", "type", "schema_version", "valid_time", "producer"),
    "sighting": ("id", "type", "schema_version", "count", "confidence", "observed_time"),
    "relationship": ("id", "type", "schema_version", "relationship_type", "source_ref",
                     "target_ref"),
}
REFER_FIELDS = ("id", "title", "description", "url", "categories")
RESPOND_FIELDS = ("id", "title", "description", "categories", "query-params")
ERROR_TYPES = ("fatal", "error", "warning")
HEALTH_STATUSES = ("ok", "unknown", "error")


def _time(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _check_interval(problems, where, interval):
    if isinstance(interval, dict) and "start_time" in interval and "end_time" in interval:
        try:
            if _time(interval["start_time"]) > _time(interval["end_time"]):
                problems.append(f"{where}: start_time after end_time")
        except (TypeError, ValueError):
            problems.append(f"{where}: unreadable time")


def _marker(observable):
    if isinstance(observable, dict):
        return (observable.get("type"), observable.get("value"))
    return (None, None)


def envelope_errors(body):
    """The envelope: a JSON object of `data` and/or well-formed `errors`."""
    if not isinstance(body, dict):
        return ["answer is not a JSON object"]
    problems = []
    extra = set(body) - {"data", "errors"}
    if extra:
        problems.append(f"unexpected envelope keys {sorted(extra)}")
    if "data" not in body and "errors" not in body:
        problems.append("neither data nor errors")
    errors = body.get("errors", [])
    if not isinstance(errors, list) or ("errors" in body and not errors):
        return problems + ["errors is not a non-empty list"]
    for error in errors:
        if not isinstance(error, dict) or set(error) != {"type", "code", "message"}:
            problems.append(f"malformed error entry {error!r:.80}")
        elif error["type"] not in ERROR_TYPES or not error["code"] \
                or not isinstance(error["message"], str):
            problems.append(f"malformed error entry {error!r:.80}")
    return problems


def required_field_errors(data):
    """Each bundle list is {count, docs}; each entity has its required fields."""
    problems = []
    for key, block in data.items():
        if key not in BUNDLE_KEYS:
            problems.append(f"unknown bundle key {key!r}")
            continue
        if not isinstance(block, dict) or set(block) != {"count", "docs"} \
                or not isinstance(block["docs"], list):
            problems.append(f"{key}: not exactly {{count, docs}}")
            continue
        for doc in block["docs"]:
            if not isinstance(doc, dict):
                problems.append(f"{key}: a doc is not an object")
                continue
            missing = [f for f in REQUIRED.get(doc.get("type"), ()) if f not in doc]
            if missing:
                problems.append(f"{key} {doc.get('id', '')}: missing {', '.join(missing)}")
            disposition = doc.get("disposition")
            if "disposition" in doc and disposition not in DISPOSITION_NAMES:
                problems.append(f"{key} {doc.get('id', '')}: disposition {disposition!r}")
            elif "disposition_name" in doc \
                    and doc["disposition_name"] != DISPOSITION_NAMES[disposition]:
                problems.append(f"{key} {doc.get('id', '')}: disposition_name "
                                f"{doc['disposition_name']!r} != {disposition}")
    return problems


def semantic_errors(body, requested=None, limit=None):
    """Section 8 rules 1-7 and 10 for an observe/deliberate body."""
    problems = []
    data = body.get("data")
    if not isinstance(data, dict):
        return problems
    entities = {}
    all_ids = []
    for key, block in data.items():
        if not isinstance(block, dict) or not isinstance(block.get("docs", []), list):
            continue
        docs = [d for d in block.get("docs", []) if isinstance(d, dict)]
        if block.get("count") != len(block.get("docs", [])):
            problems.append(f"{key}: count {block.get('count')} != {len(docs)} docs")
        for doc in docs:
            if doc.get("type", "") + "s" != key:
                problems.append(f"{key}: holds a {doc.get('type')}")
            if "id" in doc:
                all_ids.append(doc["id"])
                entities[doc["id"]] = doc
            for field in ("valid_time", "observed_time"):
                _check_interval(problems, f"{key} {doc.get('id')}", doc.get(field))
    duplicates = [i for i, n in Counter(all_ids).items() if n > 1]
    if duplicates:
        problems.append(f"duplicate ids: {duplicates[:3]}")
    for rel in _docs(data, "relationships"):
        for ref in ("source_ref", "target_ref"):
            value = rel.get(ref)
            if isinstance(value, str) and value.startswith("transient:") \
                    and value not in entities:
                problems.append(f"relationship {rel.get('id')}: dangling {ref}")
        if rel.get("source_ref") == rel.get("target_ref"):
            problems.append(f"relationship {rel.get('id')}: points at itself")
    wanted = None
    if requested is not None:
        wanted = {_marker(o) for o in requested}
    verdicts = _docs(data, "verdicts")
    seen = Counter(_marker(v.get("observable")) for v in verdicts)
    for marker, count in seen.items():
        if count > 1:
            problems.append(f"{count} verdicts for {marker}")
        if wanted is not None and marker not in wanted:
            problems.append(f"verdict for unrequested {marker}")
    for verdict in verdicts:
        ref = verdict.get("judgement_id")
        if ref is None:
            continue
        judgement = entities.get(ref)
        if judgement is None:
            if isinstance(ref, str) and ref.startswith("transient:"):
                problems.append(f"verdict judgement_id {ref} dangling")
            continue
        if judgement.get("disposition") != verdict.get("disposition"):
            problems.append(f"verdict {verdict.get('observable')} disagrees with judgement")
        if judgement.get("observable") != verdict.get("observable"):
            problems.append("verdict and judgement observables differ")
    if wanted is not None:
        for judgement in _docs(data, "judgements"):
            if _marker(judgement.get("observable")) not in wanted:
                problems.append(f"judgement on unrequested {judgement.get('observable')}")
        for sighting in _docs(data, "sightings"):
            markers = {_marker(o) for o in sighting.get("observables", [])}
            if markers and not markers & wanted:
                problems.append(f"sighting {sighting.get('id')} names no requested observable")
    for sighting in _docs(data, "sightings"):
        table = sighting.get("data")
        if isinstance(table, dict):
            for row in table.get("rows", []):
                if len(row) != len(table.get("columns", [])):
                    problems.append(f"sighting {sighting.get('id')}: ragged data table")
    if limit is not None:
        per_observable = Counter()
        for key in ("judgements", "sightings"):
            for doc in _docs(data, key):
                observables = ([doc["observable"]] if "observable" in doc
                               else doc.get("observables", []))
                for obs in observables:
                    per_observable[(key,) + _marker(obs)] += 1
        over = [m for m, n in per_observable.items() if n > limit]
        if over:
            problems.append(f"entities limit {limit} exceeded for {over[:3]}")
    return problems


def _docs(data, key):
    block = data.get(key)
    docs = block.get("docs", []) if isinstance(block, dict) else []
    return [d for d in docs if isinstance(d, dict)] if isinstance(docs, list) else []


def list_item_errors(body, fields=None):
    """Rule 9: refer/respond ids unique per observable, query-params strings;
    with `fields`, each item has them all, non-empty."""
    problems = []
    items = body.get("data")
    if not isinstance(items, list):
        return problems

    def key(item):
        params = item.get("query-params", {})
        return (item.get("id"), params.get("observable_type"), params.get("observable_value"))

    items = [i for i in items if isinstance(i, dict)]
    ids = Counter(key(item) for item in items)
    problems += [f"duplicate item id {k}" for k, n in ids.items() if n > 1]
    for item in items:
        missing = [f for f in fields or () if not item.get(f)]
        if "query-params" in (fields or ()) and not {"observable_type", "observable_value"} \
                <= set(item.get("query-params") or ()):
            missing.append("query-params observable_type/observable_value")
        if missing:
            problems.append(f"{item.get('id')}: missing {', '.join(missing)}")
        for name, value in item.get("query-params", {}).items():
            if not isinstance(value, str):
                problems.append(f"{item.get('id')}: query-param {name} is not a string")
    return problems


def check(route, body, requested=None, limit=None):
    """All contract problems of `body` answered on `route` (e.g. "health",
    "observe/observables"); [] when fine. Needs no JSON Schema library."""
    if route == "version":
        if not isinstance(body, dict) or not isinstance(body.get("version"), str):
            return ["version answer is not {\"version\": <string>}"]
        return []
    problems = envelope_errors(body)
    if problems or "data" not in body:
        return problems
    data = body["data"]
    if route == "health":
        if not isinstance(data, dict) or data.get("status") not in HEALTH_STATUSES:
            problems.append(f"health data {data!r:.60} is not {{status: ok|unknown|error}}")
    elif route in ("observe/observables", "deliberate/observables"):
        if not isinstance(data, dict):
            return problems + ["data is not a bundle object"]
        if route.startswith("deliberate") and set(data) - {"verdicts"}:
            problems.append(f"deliberate answer holds {sorted(set(data) - {'verdicts'})}")
        problems += required_field_errors(data)
        problems += semantic_errors(body, requested, limit)
    elif route in ("refer/observables", "respond/observables"):
        if not isinstance(data, list):
            return problems + ["data is not a list"]
        fields = REFER_FIELDS if route.startswith("refer") else RESPOND_FIELDS
        problems += list_item_errors(body, fields)
    return problems
