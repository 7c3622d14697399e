"""`python -m api.tools.healthcheck`: the container's HEALTHCHECK.

GET / of the server on this host's PORT (no token, no provider call): exit 0
when it answers the relay's JSON description, 1 otherwise.
"""
import json
import sys
import urllib.request

from api.settings import Settings
from api.version import NAME


def url(settings=None):
    settings = settings or Settings.from_env()
    host = settings.get_str("RELAY_HOST", "127.0.0.1")
    if host in ("0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    return f"http://{host}:{settings.get_int('PORT', 9090)}/"


def main(timeout=3.0):
    target = url()
    try:
        with urllib.request.urlopen(target, timeout=timeout) as response:
            body = json.loads(response.read())
        healthy = body.get("name") == NAME
    except (OSError, ValueError, AttributeError) as error:
        print(f"unhealthy: {target}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    if not healthy:
        print(f"unhealthy: {target} is not the relay", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
