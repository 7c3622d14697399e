"""`jwt check <module URL>`: prove a deployed module works, end to end.

Calls /version, /health, /deliberate, /observe, /refer and /respond of the
module with its JWT (given, or minted from claims and the SECRET_KEY), checks
every answer against the relay contract (api/tools/contract.py) and prints a
table: route, HTTP status, time, entity counts, problems. Exit 0 only when
every route answers without an error and without a contract problem.

The token and the key are never printed.
"""
import argparse
import os
import pathlib
import sys
import time

from api.telemetry import entity_counts
from api.tools import contract
from api.tools.cli import CliError, load_json, mint

ROUTES = ("version", "health", "deliberate/observables", "observe/observables",
          "refer/observables", "respond/observables")
# The repository's list; from an installed package, ./observables.json.
DEFAULT_OBSERVABLES = pathlib.Path(__file__).resolve().parents[2] / "observables.json"
if not DEFAULT_OBSERVABLES.is_file():  # pragma: no cover - installed without the repository
    DEFAULT_OBSERVABLES = pathlib.Path("observables.json")
# API Gateway gives up after 29 s; a little more so that its 504 is what we see.
TIMEOUT = 32.0


class Fatal(Exception):
    """A failure that makes the other routes pointless: one line and a hint."""


def auth_hint(message, minted):
    """A hint for the relay's `authorization error` message."""
    text = message.lower()
    if "secret_key is missing" in text:
        return "set the SECRET_KEY environment variable on the Lambda"
    if "secret_key is too short" in text:
        return "the Lambda's SECRET_KEY is too short: set the 64-character one `jwt dev` prints"
    if "jwks_host" in text or "kid from jwt header" in text:
        return ("an XDR-signed (RS256) token: check the module type's custom_jwks_host "
                "region and RELAY_JWKS_HOSTS on the Lambda")
    if "audience" in text:
        return ("the token's audience is another URL: check the URL given here is the "
                "module type's url (behind a proxy, list it in RELAY_PUBLIC_URLS)")
    if "this jwt is for the" in text:
        return "the token is bound to another provider: check the /<provider> of the URL"
    if "provided key" in text or "signature" in text:
        if minted:
            return "SECRET_KEY on the Lambda differs from the one that signed this token"
        return ("SECRET_KEY on the Lambda differs from the one that signed this token "
                "(or the token is from another deployment): mint it again with `jwt dev`")
    if "structure" in text or "header" in text or "authorization type" in text:
        if "payload" in text:
            return ("the token lacks the credential claims this provider needs: "
                    "mint it with `jwt <stage> --provider NAME`")
        return "the token is not a whole JWT: pass exactly what `jwt dev` printed"
    if "expired" in text or "not yet valid" in text:
        return "the token's exp/nbf claim rules it out now: mint a new one"
    return "the module rejected the token"


def gateway_hint(status, body):
    """A one-line explanation for an answer that is not the relay's."""
    # API Gateway says {"message": ...}, its resource policy {"Message": ...}.
    message = (body.get("message") or body.get("Message")) if isinstance(body, dict) else None
    if status == 502:
        return ("API Gateway answered 502: the Lambda crashed, timed out or returned an "
                "invalid response; see `zappa tail <stage> --since 10m`")
    if status == 504:
        return ("API Gateway answered 504: the Lambda took longer than 29 s; "
                "see `zappa tail <stage> --since 10m`")
    if status == 403 and message and "not authorized" in message:
        return (f"HTTP 403 '{message[:80]}': API Gateway's resource policy refused this "
                "address (ingress lock-down); run the check from an address it admits")
    if status in (403, 404) and message:
        return (f"HTTP {status} '{message}': no relay route at this URL; "
                "check the stage and the path (`zappa status <stage>` prints the URL)")
    return f"HTTP {status}: not an answer of the relay; check the URL"


class _Bearer:
    """requests auth hook: the token as a Bearer header. Being an auth object
    keeps requests from putting ~/.netrc credentials in its place."""

    def __init__(self, token):
        self.token = token

    def __call__(self, prepared):
        prepared.headers["Authorization"] = f"Bearer {self.token}"
        return prepared


def _post(session, url, route, token, observables, timeout):
    import requests

    payload = None if route in ("version", "health") else observables
    started = time.perf_counter()
    try:
        response = session.post(f"{url}/{route}", json=payload, timeout=timeout,
                                auth=_Bearer(token), allow_redirects=False)
    except requests.Timeout:
        raise Fatal(f"{url} did not answer {route} within {timeout:g} s; hint: is the "
                    "Lambda's timeout too short, or the URL behind a firewall?") from None
    except requests.RequestException as error:
        raise Fatal(f"cannot reach {url} ({type(error).__name__}); hint: check the URL "
                    "(`zappa status <stage>` prints it) and your network") from None
    elapsed = time.perf_counter() - started
    try:
        body = response.json()
    except ValueError:
        body = None
    return response.status_code, elapsed, body


def check_route(route, status, body, observables, minted):
    """(entity counts, problems) of one answer; raises Fatal when it is not
    the relay answering or the relay refuses the token."""
    if status != 200:
        raise Fatal(gateway_hint(status, body))
    if body is None:
        raise Fatal(f"{route} answered HTTP 200 with a body that is not JSON; "
                    "hint: is this URL a relay module?")
    requested = observables if route.endswith("/observables") else None
    problems = contract.check(route, body, requested)
    errors = body.get("errors") if isinstance(body, dict) else None
    for error in errors if isinstance(errors, list) else ():
        if not isinstance(error, dict):
            continue
        if error.get("code") == "authorization error" and \
                str(error.get("message", "")).startswith("Authorization failed"):
            raise Fatal(f"{route}: {error.get('message')}; hint: "
                        f"{auth_hint(str(error.get('message')), minted)}")
        problems.append(f"{error.get('code')}: {error.get('message')}")
    data = body.get("data") if isinstance(body, dict) else None
    return entity_counts(data), problems


def _counts_text(counts):
    return ", ".join(f"{key} {count}" for key, count in counts.items()) or "-"


def render(rows):
    """The result table: one line per route, problems indented below."""
    lines = [f"{'route':<24}{'HTTP':>5}{'time':>10}  {'problems':>8}  entities"]
    for route, status, seconds, counts, problems in rows:
        lines.append(f"{route:<24}{status:>5}{seconds * 1000:>7.0f} ms  {len(problems):>8}  "
                     f"{_counts_text(counts)}")
        lines += [f"    - {problem}" for problem in problems]
    return "\n".join(lines)


def run(url, token, observables, out, err, minted=False, timeout=TIMEOUT, session=None):
    """Check every route of the module at `url`; returns the exit status."""
    import requests

    url = url.rstrip("/")
    session = session or requests.Session()
    rows = []
    try:
        for index, route in enumerate(ROUTES, 1):
            print(f"[{index}/{len(ROUTES)}] {route} ...", file=err, flush=True)
            status, seconds, body = _post(session, url, route, token, observables, timeout)
            counts, problems = check_route(route, status, body, observables, minted)
            print(f"[{index}/{len(ROUTES)}] {route}: HTTP {status} in {seconds * 1000:.0f} ms, "
                  f"{len(problems)} problem(s)", file=err, flush=True)
            rows.append((route, status, seconds, counts, problems))
    except Fatal as error:
        if rows:
            print(render(rows), file=out)
        print(f"jwt check: {error}", file=out)
        return 1
    print(render(rows), file=out)
    failed = sum(1 for row in rows if row[4])
    if failed:
        print(f"FAILED: {failed} of {len(rows)} routes answered errors or broke the "
              "contract", file=out)
        return 1
    print(f"OK: {len(rows)} routes answered without an error and within the contract",
          file=out)
    return 0


def _token(args):
    if args.token:
        return args.token, False
    if not args.claims:
        raise CliError("give --token JWT, or --claims FILE with --secret-key KEY")
    claims = load_json(args.claims)
    if not isinstance(claims, dict):
        raise CliError(f"file '{args.claims}' must hold a JSON object")
    secret = args.secret_key or os.environ.get("SECRET_KEY")
    if not secret:
        raise CliError("--claims needs --secret-key KEY or the SECRET_KEY environment "
                       "variable")
    return mint(claims, secret), True


def _observables(path):
    observables = load_json(path)
    if not isinstance(observables, list) or not all(
            isinstance(o, dict) and {"type", "value"} <= set(o) for o in observables):
        raise CliError(f"file '{path}' must hold a JSON list of {{type, value}} objects")
    return observables


def main(argv=None, out=None, err=None):
    out, err = out or sys.stdout, err or sys.stderr
    parser = argparse.ArgumentParser(
        prog="jwt check",
        description="Call every route of a deployed relay module and check the answers "
                    "against the relay contract.")
    parser.add_argument("url", help="the module URL (the Lambda URL, plus /<provider> "
                        "for a provider's module)")
    parser.add_argument("--token", help="the module's JWT")
    parser.add_argument("--claims", help="a JSON file of claims to sign instead of --token")
    parser.add_argument("--secret-key", help="the SECRET_KEY to sign --claims with "
                                             "(default: the SECRET_KEY environment variable)")
    parser.add_argument("--observables", default=str(DEFAULT_OBSERVABLES),
                        help="a JSON list of observables (default: observables.json)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT,
                        help="seconds to wait for each route")
    args = parser.parse_args(argv)
    try:
        token, minted = _token(args)
        observables = _observables(args.observables)
    except CliError as error:
        print(f"jwt check: error: {error}", file=err)
        return 2
    return run(args.url, token, observables, out=out, err=err, minted=minted,
               timeout=args.timeout)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
