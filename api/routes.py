"""The relay's HTTP routes, served un-prefixed and under `/<provider>/`.

Un-prefixed routes serve RELAY_PROVIDER; `/misp/...`, `/pulsedive/...`,
`/otx/...` and `/cyberprotect/...` serve that provider, so one Lambda backs
four SecureX/XDR modules. Every answer is HTTP 200 with the contract's
envelope; errors travel in the body.
"""
import time
from types import MappingProxyType

from flask import Blueprint, current_app, jsonify, request

from api import auth, providers, response_size, telemetry
from api.context import RequestContext
from api.errors import HealthCheckError, ProviderUnavailableError, RelayError
from api.observables import parse_observables, parse_trigger, read_body, select
from api.settings import MODULE_SETTINGS, Settings, parse_entities_limit
from api.version import NAME, VERSION

bp = Blueprint("relay", __name__)

_EMPTY = {"observe": {}, "deliberate": {}, "refer": [], "respond": []}
_MAX_SUBJECTS = 5


def errors_json(errors):
    """Error entries, one per distinct (type, code, message), naming subjects."""
    groups = {}
    for error in errors:
        entry = error.json()
        key = (entry["type"], entry["code"], entry["message"])
        groups.setdefault(key, []).append(getattr(error, "subject", None))
    result = []
    for (kind, code, message), subjects in groups.items():
        named = [s for s in subjects if s]
        if named:
            shown = ", ".join(named[:_MAX_SUBJECTS])
            if len(named) > _MAX_SUBJECTS:
                shown += f" and {len(named) - _MAX_SUBJECTS} more"
            message = f"{shown}: {message}"
        result.append({"type": kind, "code": code, "message": message})
    return result


def envelope(data=None, errors=()):
    telemetry.note(data=data, errors=errors)
    body = {}
    if errors:
        body["errors"] = errors_json(errors)
        if data:
            body["data"] = data
    else:
        body["data"] = data
    return response_size.response(body, Settings.from_env().max_response_bytes)


def _audiences(provider_name, settings):
    """The module URLs an RS256 token's `aud` may name: the request's URL root
    (API Gateway's stage included) or a RELAY_PUBLIC_URLS base, followed by
    `/<provider>` on prefixed routes."""
    suffix = f"/{provider_name}" if provider_name else ""
    bases = (request.url_root,) + settings.setting_list("RELAY_PUBLIC_URLS")
    return [base.rstrip("/") + suffix for base in bases]


def _context(provider_name, settings):
    deadline = time.monotonic() + settings.deadline
    name = provider_name or settings.default_provider
    # Authenticate first: an unauthenticated caller learns nothing of the setup.
    # `auth_ctx` times and counts a JWKS fetch as part of this request.
    auth_ctx = RequestContext(provider="Cisco XDR", settings=settings, deadline=deadline)
    claims = auth.authenticate(request.headers.get("Authorization"), auth_ctx, name,
                               _audiences(provider_name, settings))
    if name not in providers.NAMES:
        raise ProviderUnavailableError(
            f"RELAY_PROVIDER '{name}' is not one of {', '.join(providers.NAMES)}")
    provider = providers.get(name)
    auth.require_claims(claims, provider.credential_claims)
    settings = settings.for_module(claims, MODULE_SETTINGS + tuple(provider.module_settings))
    limit = parse_entities_limit(
        claims.get("CTR_ENTITIES_LIMIT"),
        default=parse_entities_limit(settings.entities_limit,
                                     maximum=provider.max_entities_limit),
        maximum=provider.max_entities_limit)
    ctx = RequestContext(provider=provider.title, settings=settings,
                         claims=MappingProxyType(claims), entities_limit=limit,
                         deadline=deadline, stats=auth_ctx.stats)
    return provider, ctx


def _observables_route(provider_name, capability):
    settings = Settings.from_env()
    try:
        provider, ctx = _context(provider_name, settings)
        telemetry.note(ctx=ctx)
        observables = parse_observables(read_body(request, settings), settings)
        telemetry.note(observables=observables)
        if not provider.supports(capability):
            return envelope(_EMPTY[capability])
        selected = select(observables, provider)
        telemetry.note(supported=selected)
        if capability in ("observe", "deliberate"):
            if not selected:
                return envelope({})
            outcome = getattr(provider, capability)(ctx, selected)
            return envelope(outcome.bundle.json(), outcome.errors)
        if capability == "refer":
            return envelope(provider.refer(ctx, selected))
        return envelope(provider.respond_actions(ctx, selected))
    except RelayError as error:
        return envelope(errors=[error])


@bp.post("/observe/observables")
def observe(provider=None):
    return _observables_route(provider, "observe")


@bp.post("/deliberate/observables")
def deliberate(provider=None):
    return _observables_route(provider, "deliberate")


@bp.post("/refer/observables")
def refer(provider=None):
    return _observables_route(provider, "refer")


@bp.post("/respond/observables")
def respond_observables(provider=None):
    return _observables_route(provider, "respond")


@bp.post("/respond/trigger")
def respond_trigger(provider=None):
    settings = Settings.from_env()
    try:
        provider_obj, ctx = _context(provider, settings)
        telemetry.note(ctx=ctx)
        params = parse_trigger(read_body(request, settings), settings)
        if not provider_obj.supports("respond"):
            raise RelayError(
                f"{provider_obj.title} offers no response action "
                f"'{params['action-id']}'")
        provider_obj.trigger(ctx, params)
    except RelayError as error:
        return jsonify({"data": {"status": "failure"},
                        "errors": errors_json([error])})
    return jsonify({"data": {"status": "success"}})


@bp.post("/health")
def health(provider=None):
    settings = Settings.from_env()
    try:
        provider_obj, ctx = _context(provider, settings)
        telemetry.note(ctx=ctx)
        if provider_obj.supports("health"):
            provider_obj.health(ctx)
    except RelayError as error:
        return envelope(errors=[error])
    return envelope({"status": "ok"})


@bp.post("/version")
def version(provider=None):
    return jsonify({"version": VERSION})


@bp.get("/watchdog")
def watchdog(provider=None):
    value = request.headers.get("Health-Check")
    if not value:
        return envelope(errors=[HealthCheckError("Invalid Health Check")])
    return jsonify({"data": value})


@bp.get("/")
def index(provider=None):
    """What `curl http://localhost:9090` shows: no token, nothing secret."""
    routes = sorted({(rule.rule, method) for rule in current_app.url_map.iter_rules()
                     if rule.endpoint.startswith("relay.")
                     for method in rule.methods - {"HEAD", "OPTIONS"}})
    return jsonify({"name": NAME, "version": VERSION, "providers": list(providers.NAMES),
                    "routes": [f"{method} {path}" for path, method in routes]})
