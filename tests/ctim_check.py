"""Checks a relay response body against ../shared/ctim-schema and the rules
of relay-contract.md section 8 that JSON Schema cannot express (those come
from the project's own checker, api/tools/contract.py, which `jwt check` uses)."""
import json
import os
import pathlib

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

from api.providers import NAMES as PROVIDER_NAMES
from api.tools.contract import list_item_errors, semantic_errors

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
