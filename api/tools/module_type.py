"""Cisco XDR / SecureX module type definitions, generated from the providers'
own declarations (title, description, url, types, capabilities, claims,
per-module settings).

    python -m api.tools.module_type [--out modules/] [--url LAMBDA_URL] [--region us|eu|apjc]
    python -m api.tools.module_type --alg HS256 --secret-key KEY --url ... --out /tmp/m

writes `<out>/<provider>/module_type.json` for every provider that loads.
RS256 (default): XDR signs each module's configuration token with its own key
and the relay checks it against the region's JWKS (`custom_jwks_host`): no
secret anywhere. HS256: XDR signs with `configuration-token-key`, the Lambda's
SECRET_KEY, so that file must stay out of the repository. The committed files
are RS256 for the US region with a placeholder URL; `--check` only compares.
"""
import argparse
import json
import sys
from pathlib import Path

from api import providers
from api.auth import MIN_SECRET_BYTES
from api.settings import MODULE_SETTING_HELP, MODULE_SETTINGS

URL_PLACEHOLDER = "https://<API_ID>.execute-api.<AWS_REGION>.amazonaws.com/dev"
DEFAULT_OUT = "modules"
# XDR region -> the host whose JWKS signs its configuration tokens.
JWKS_HOSTS = {"us": "visibility.amp.cisco.com", "eu": "visibility.eu.amp.cisco.com",
              "apjc": "visibility.apjc.amp.cisco.com"}

CAPABILITIES = {                 # capability -> (description, relay routes)
    "health": ("Health check", ["health"]),
    "deliberate": ("Deliberation", ["deliberate/observables"]),
    "observe": ("Enrichment", ["observe/observables"]),
    "refer": ("Reference links", ["refer/observables"]),
    "respond": ("Response actions", ["respond/observables", "respond/trigger"]),
}
TYPE_NAMES = {"ip": "IP", "ipv6": "IPv6", "domain": "Domain", "hostname": "Hostname",
              "url": "URL", "md5": "MD5", "sha1": "SHA1", "sha256": "SHA256",
              "email": "Email"}
ENTITIES_LIMIT_SPEC = {
    "key": "custom_CTR_ENTITIES_LIMIT",
    "type": "integer",
    "label": "Entities Limit",
    "required": False,
    "tooltip": "Maximum number of judgements, indicators and sightings per observable "
               "(default 100; the relay also caps it per provider).",
}


def _types(provider):
    return ", ".join(TYPE_NAMES.get(t, t) for t in sorted(provider.supported_types))


def configuration_spec(provider):
    """One field per credential claim (`custom_<claim>` reaches the relay as
    `<claim>`), the optional per-module entities limit, and one optional field
    per setting a module may set (`module_settings`, described by `env_vars`)."""
    spec = [{"key": f"custom_{claim}", "type": "api_key",
             "label": provider.claim_prompts.get(claim, claim), "required": True}
            for claim in provider.credential_claims]
    settings = [{"key": f"custom_{name}", "type": "string", "label": name, "required": False,
                 "tooltip": f"{provider.env_vars.get(name) or MODULE_SETTING_HELP.get(name, name)}"
                            "; empty: the Lambda's "
                            f"`{name}` applies."}
                for name in dict.fromkeys(MODULE_SETTINGS + tuple(provider.module_settings))]
    return spec + [dict(ENTITIES_LIMIT_SPEC)] + settings


def _tips(provider, url, alg):
    if alg == "RS256":
        first = ("1. Deploy the relay Lambda (`zappa deploy dev`). Cisco XDR signs each "
                 "module's configuration token; the relay checks it against the JWKS of "
                 "`custom_jwks_host` (allowed by the Lambda's `RELAY_JWKS_HOSTS`) and "
                 "requires its audience to be this module's URL: no secret to share.")
    else:
        first = ("1. Deploy the relay Lambda (`zappa deploy dev`) and set its `SECRET_KEY` "
                 "environment variable; this module type's `configuration-token-key` must "
                 "be the same value.")
    steps = [first]
    if provider.env_vars:
        names = ", ".join(f"`{name}`" for name in provider.env_vars)
        steps.append(f"2. Set the provider's settings on the Lambda: {names}.")
    else:
        steps.append("2. The provider needs no Lambda setting.")
    fields = ", ".join(f"**{f['label']}**" for f in configuration_spec(provider))
    steps.append(f"3. Create a module of this type and fill in {fields}.")
    steps.append(f"4. The module calls `{url}`.")
    return "\n".join(steps)


def module_type(provider, url=None, secret_key=None, alg="RS256", region="us"):
    """The module_type.json body for `provider` served at `<url>/<name>`:
    RS256 with the region's `custom_jwks_host`, or HS256 with `secret_key`."""
    relay_url = f"{(url or URL_PLACEHOLDER).rstrip('/')}/{provider.name}"
    capabilities = [c for c in provider.capabilities if c in CAPABILITIES]
    apis = [api for c in capabilities for api in CAPABILITIES[c][1]]
    description = (f"{provider.description}\n\n"
                   f"**Observable types:** {_types(provider)}.\n\n"
                   f"Served by the self-hosted tr-intel-relay (AWS Lambda, Zappa) at "
                   f"`{relay_url}`.")
    properties = {
        "url": relay_url,
        "supported-apis": apis,
        "auth-type": "configuration-token",
        "configuration-token-alg": alg,
    }
    if alg == "RS256":
        properties["custom_jwks_host"] = JWKS_HOSTS[region]
    else:
        properties["configuration-token-key"] = secret_key
    return {
        "title": provider.title,
        "default_name": provider.title,
        "short_description": provider.description,
        "description": description,
        "tips": _tips(provider, relay_url, alg),
        "external_references": [{"label": "Official website", "link": provider.url}],
        "configuration_spec": configuration_spec(provider),
        "capabilities": [{"id": c, "description": CAPABILITIES[c][0]} for c in capabilities],
        "properties": properties,
        "product_categories": [{"id": "threat-intel", "description": "Threat Intelligence"}],
    }


def render(body):
    """The file text: stable key order, two-space indent, final newline."""
    return json.dumps(body, indent=2, ensure_ascii=False) + "\n"


def generate(url=None, secret_key=None, alg="RS256", region="us"):
    """{provider name: file text} for every provider that loads."""
    return {p.name: render(module_type(p, url, secret_key, alg, region))
            for p in providers.available()}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m api.tools.module_type",
                                     description="Write one module_type.json per provider.")
    parser.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: modules)")
    parser.add_argument("--url", help="the relay's base URL (Lambda URL incl. the stage)")
    parser.add_argument("--alg", choices=("RS256", "HS256"), default="RS256",
                        help="RS256: XDR signs, the relay checks the region's JWKS "
                             "(default); HS256: XDR signs with --secret-key")
    parser.add_argument("--region", choices=sorted(JWKS_HOSTS), default="us",
                        help="RS256: the XDR region whose JWKS host signs (default us)")
    parser.add_argument("--secret-key",
                        help="HS256: the Lambda's SECRET_KEY, as configuration-token-key")
    parser.add_argument("--check", action="store_true",
                        help="compare with the files in --out instead of writing")
    args = parser.parse_args(argv)
    if (args.alg == "HS256") != bool(args.secret_key):
        parser.error("--secret-key goes with --alg HS256, and only with it")
    if args.secret_key and len(args.secret_key.encode("utf-8")) < MIN_SECRET_BYTES:
        parser.error(f"--secret-key must be at least {MIN_SECRET_BYTES} bytes, like the "
                     "Lambda's SECRET_KEY")
    out = Path(args.out)
    stale = []
    for name, text in generate(args.url, args.secret_key, args.alg, args.region).items():
        path = out / name / "module_type.json"
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(path)
    if stale:
        print("out of date (run `python -m api.tools.module_type`): " + ", ".join(stale),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
