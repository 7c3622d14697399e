"""Cisco XDR / SecureX module type definitions, generated from the providers'
own declarations (title, description, url, types, capabilities, claims).

    python -m api.tools.module_type [--out modules/] [--url LAMBDA_URL] [--secret-key KEY]

writes `<out>/<provider>/module_type.json` for every provider that loads.
The committed files carry a placeholder URL and no key; run with `--url`
(and `--secret-key`) into a folder outside the repository to get the
definition to import for your deployment. `--check` only compares.
"""
import argparse
import json
import sys
from pathlib import Path

from api import providers

URL_PLACEHOLDER = "https://<API_ID>.execute-api.<AWS_REGION>.amazonaws.com/dev"
DEFAULT_OUT = "modules"

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
    `<claim>`), the optional per-module entities limit, and one optional
    field per setting the provider lets a module set (`module_settings`)."""
    spec = [{"key": f"custom_{claim}", "type": "api_key",
             "label": provider.claim_prompts.get(claim, claim), "required": True}
            for claim in provider.credential_claims]
    settings = [{"key": f"custom_{name}", "type": "string", "label": name, "required": False,
                 "tooltip": f"{provider.env_vars.get(name, name)} (overrides the Lambda's "
                            "environment variable for this module)"}
                for name in provider.module_settings]
    return spec + [dict(ENTITIES_LIMIT_SPEC)] + settings


def _tips(provider, url):
    steps = [
        "1. Deploy the relay Lambda (`zappa deploy dev`) and set its `SECRET_KEY` "
        "environment variable; this module type's `configuration-token-key` must be "
        "the same value.",
    ]
    if provider.env_vars:
        names = ", ".join(f"`{name}`" for name in provider.env_vars)
        steps.append(f"2. Set the provider's settings on the Lambda: {names}.")
    else:
        steps.append("2. The provider needs no Lambda setting beyond `SECRET_KEY`.")
    fields = ", ".join(f"**{f['label']}**" for f in configuration_spec(provider))
    steps.append(f"3. Create a module of this type and fill in {fields}.")
    steps.append(f"4. The module calls `{url}`.")
    return "\n".join(steps)


def module_type(provider, url=None, secret_key=None):
    """The module_type.json body for `provider` served at `<url>/<name>`."""
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
        "configuration-token-alg": "HS256",
    }
    if secret_key:
        properties["configuration-token-key"] = secret_key
    return {
        "title": provider.title,
        "default_name": provider.title,
        "short_description": provider.description,
        "description": description,
        "tips": _tips(provider, relay_url),
        "external_references": [{"label": "Official website", "link": provider.url}],
        "configuration_spec": configuration_spec(provider),
        "capabilities": [{"id": c, "description": CAPABILITIES[c][0]} for c in capabilities],
        "properties": properties,
        "product_categories": [{"id": "threat-intel", "description": "Threat Intelligence"}],
    }


def render(body):
    """The file text: stable key order, two-space indent, final newline."""
    return json.dumps(body, indent=2, ensure_ascii=False) + "\n"


def generate(url=None, secret_key=None):
    """{provider name: file text} for every provider that loads."""
    return {p.name: render(module_type(p, url, secret_key)) for p in providers.available()}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m api.tools.module_type",
                                     description="Write one module_type.json per provider.")
    parser.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: modules)")
    parser.add_argument("--url", help="the relay's base URL (Lambda URL incl. the stage)")
    parser.add_argument("--secret-key",
                        help="the Lambda's SECRET_KEY, as configuration-token-key")
    parser.add_argument("--check", action="store_true",
                        help="compare with the files in --out instead of writing")
    args = parser.parse_args(argv)
    out = Path(args.out)
    stale = []
    for name, text in generate(args.url, args.secret_key).items():
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
