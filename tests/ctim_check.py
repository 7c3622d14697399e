"""Checks a relay response body against ../shared/ctim-schema and the rules
of relay-contract.md section 8 that JSON Schema cannot express."""
import json
import os
import pathlib
from collections import Counter
from datetime import datetime

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

from api.providers import NAMES as PROVIDER_NAMES

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCHEMA_DIR = pathlib.Path(os.environ.get(
    "CTIM_SCHEMA_DIR", ROOT.parent / "shared" / "ctim-schema"))

ROUTE_SCHEMAS = {
    "observe/observables": "observe-response.schema.json",
    "deliberate/observables": "deliberate-response.schema.json",
    "refer/observables": "refer-response.schema.json",
    "respond/observables": "respond-observables-response.schema.json",
    "respond/trigger": "respond-trigger-response.schema.json",
    "health": "health-response.schema.json",
    "version": "version-response.schema.json",
    "watchdog": None,
}

# GET / (and GET /<provider>/): the relay's self-description, no CTIM schema.
INDEX_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "required": ["name", "version", "providers", "routes"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "version": {"$ref": "version-response.schema.json#/properties/version"},
        "providers": {"type": "array", "minItems": 1, "uniqueItems": True,
                      "items": {"enum": list(PROVIDER_NAMES)}},
        "routes": {"type": "array", "minItems": 1, "uniqueItems": True,
                   "items": {"type": "string", "pattern": "^(GET|POST) /"}},
    },
}

_validators = {}


def _validator(name):
    if name not in _validators:
        docs = {p.name: json.loads(p.read_text())
                for p in SCHEMA_DIR.glob("*.schema.json")}
        if not docs:
            raise RuntimeError(f"no CTIM schemas under {SCHEMA_DIR}")
        registry = Registry().with_resources(
            (doc["$id"], Resource.from_contents(doc)) for doc in docs.values())
        # The index schema refers to the version schema by its file name.
        base = docs["version-response.schema.json"]["$id"].rsplit("/", 1)[0]
        index = dict(INDEX_SCHEMA, **{"$id": f"{base}/relay-index.schema.json"})
        for file, doc in {**docs, "index": index}.items():
            _validators[file] = Draft202012Validator(
                doc, registry=registry, format_checker=FormatChecker())
    return _validators[name]


def schema_errors(schema_file, body):
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in _validator(schema_file).iter_errors(body)]


def route_of(path):
    """The contract route of a request path (provider prefix removed)."""
    parts = path.split("?")[0].strip("/").split("/")
    if parts == [""] or (len(parts) == 1 and parts[0] in PROVIDER_NAMES):
        return "index"
    for size in (2, 1):
        candidate = "/".join(parts[-size:])
        if candidate in ROUTE_SCHEMAS:
            return candidate
    return None


def _time(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _check_interval(problems, where, interval):
    if interval and "start_time" in interval and "end_time" in interval:
        if _time(interval["start_time"]) > _time(interval["end_time"]):
            problems.append(f"{where}: start_time after end_time")


def semantic_errors(body, requested=None, limit=None):
    """Section 8 rules for an observe/deliberate body."""
    problems = []
    data = body.get("data")
    if not isinstance(data, dict):
        return problems
    entities = {}
    all_ids = []
    for key, block in data.items():
        docs = block.get("docs", [])
        if block.get("count") != len(docs):
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
    for rel in data.get("relationships", {}).get("docs", []):
        for ref in ("source_ref", "target_ref"):
            if rel[ref].startswith("transient:") and rel[ref] not in entities:
                problems.append(f"relationship {rel['id']}: dangling {ref}")
        if rel["source_ref"] == rel["target_ref"]:
            problems.append(f"relationship {rel['id']}: points at itself")
    wanted = None
    if requested is not None:
        wanted = {(o["type"], o["value"]) for o in requested}
    verdicts = data.get("verdicts", {}).get("docs", [])
    seen = Counter((v["observable"]["type"], v["observable"]["value"]) for v in verdicts)
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
            if ref.startswith("transient:"):
                problems.append(f"verdict judgement_id {ref} dangling")
            continue
        if judgement["disposition"] != verdict["disposition"]:
            problems.append(f"verdict {verdict['observable']} disagrees with judgement")
        if judgement["observable"] != verdict["observable"]:
            problems.append("verdict and judgement observables differ")
    if wanted is not None:
        for judgement in data.get("judgements", {}).get("docs", []):
            obs = judgement["observable"]
            if (obs["type"], obs["value"]) not in wanted:
                problems.append(f"judgement on unrequested {obs}")
        for sighting in data.get("sightings", {}).get("docs", []):
            markers = {(o["type"], o["value"]) for o in sighting.get("observables", [])}
            if markers and not markers & wanted:
                problems.append(f"sighting {sighting['id']} names no requested observable")
            for row in sighting.get("data", {}).get("rows", []):
                if len(row) != len(sighting["data"]["columns"]):
                    problems.append(f"sighting {sighting['id']}: ragged data table")
    if limit is not None:
        per_observable = Counter()
        for key in ("judgements", "sightings"):
            for doc in data.get(key, {}).get("docs", []):
                observables = ([doc["observable"]] if "observable" in doc
                               else doc.get("observables", []))
                for obs in observables:
                    per_observable[(key, obs["type"], obs["value"])] += 1
        over = [m for m, n in per_observable.items() if n > limit]
        if over:
            problems.append(f"entities limit {limit} exceeded for {over[:3]}")
    return problems


def list_item_errors(body):
    """Rule 9: refer/respond ids unique per observable, query-params strings."""
    problems = []
    items = body.get("data")
    if not isinstance(items, list):
        return problems

    def key(item):
        params = item.get("query-params", {})
        return (item.get("id"), params.get("observable_type"), params.get("observable_value"))

    ids = Counter(key(item) for item in items)
    problems += [f"duplicate item id {k}" for k, n in ids.items() if n > 1]
    for item in items:
        for name, value in item.get("query-params", {}).items():
            if not isinstance(value, str):
                problems.append(f"{item.get('id')}: query-param {name} is not a string")
    return problems


def check(path, body, requested=None, limit=None):
    """All problems with `body` answered on `path`; [] when valid."""
    route = route_of(path)
    if route == "index":
        return schema_errors("index", body)
    if route is None or route == "watchdog":
        if "errors" in body:
            return schema_errors("errors.schema.json", body)
        return [] if route == "watchdog" else [f"unknown route {path}"]
    problems = schema_errors(ROUTE_SCHEMAS[route], body)
    if route in ("observe/observables", "deliberate/observables"):
        problems += semantic_errors(body, requested, limit)
    if route in ("refer/observables", "respond/observables"):
        problems += list_item_errors(body)
    return problems


def assert_valid(path, body, requested=None, limit=None):
    problems = check(path, body, requested, limit)
    assert not problems, f"{path}: invalid response body: {problems}\n{body}"
