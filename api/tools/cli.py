"""`jwt <stage>`: mint the SECRET_KEY / JWT pair for a relay module
(`jwt check <module URL>` checks a deployed module: api/tools/check.py).

Reads `zappa_settings.json` (the stage) and `module_settings.json` (module
name, claims to prompt for, module type ids per region) from the current
directory, like Cisco's tr-05-jwt-generator, and prints the JWT, the
SECRET_KEY, the AWS console link to the Lambda's environment variables and
the module-creation links per SecureX region.
"""
import argparse
import json
import os
import secrets
import string
import sys

from api.auth import MIN_SECRET_BYTES

SECRET_ALPHABET = string.ascii_letters + string.digits
SECRET_LENGTH = 64
AWS_LINK = ("https://console.aws.amazon.com/lambda/home?region={region}"
            "#/functions/{function}/edit/environment-variables?tab=configuration")
MODULE_LINK = "https://securex.{region}.security.cisco.com/settings/modules/available/{id}/new"


class CliError(Exception):
    pass


def load_json(name):
    try:
        with open(name, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise CliError(f"file '{name}' does not exist") from None
    except (ValueError, UnicodeDecodeError):
        raise CliError(f"file '{name}' is malformed") from None


def generate_secret():
    """A random 64-character secret (62 symbols, about 381 bits)."""
    return "".join(secrets.choice(SECRET_ALPHABET) for _ in range(SECRET_LENGTH))


def prompt_claims(prompts, ask=input):
    """Ask for each claim in order until a non-blank answer is given."""
    claims = {}
    for key, label in prompts.items():
        value = ""
        while not value:
            try:
                value = ask(f"Enter: {label}: ").strip()
            except EOFError:
                raise CliError(f"no value given for '{label}'") from None
        claims[key] = value
    return claims


def module_definition(module_settings, provider_name):
    """(module name, claim prompts) for the default module or a provider."""
    if provider_name is None:
        return module_settings.get("name", "relay"), dict(module_settings.get("jwt") or {})
    from api import providers

    if provider_name not in providers.NAMES:
        raise CliError(f"provider '{provider_name}' is not one of "
                       f"{', '.join(providers.NAMES)}")
    provider = providers.get(provider_name)
    return f"Threat Intel Relay ({provider.title})", dict(provider.claim_prompts)


def mint(claims, secret):
    import jwt

    return jwt.encode(claims, secret, algorithm="HS256")


def render(name, token, secret, stage_settings, stage, regions, provider_name):
    function = f"{stage_settings.get('project_name', 'relay')}-{stage}"
    aws_link = AWS_LINK.format(region=stage_settings.get("aws_region", "us-east-1"),
                               function=function)
    suffix = f"/{provider_name}" if provider_name else ""
    lines = [
        f"The JWT for the {name} module is:",
        f"    {token}",
        "The SECRET_KEY to validate the JWT is:",
        f"    {secret}",
        "Use this URL to navigate to the AWS Console and configure the SECRET_KEY "
        "environment variable using the above value:",
        f"    {aws_link}",
        f"Use one of these URLs to navigate to SecureX in your region and create the "
        f"{name} module using your Lambda's URL{suffix and ' followed by ' + suffix} "
        "and the JWT:",
    ]
    for region, module_type_id in regions.items():
        link = MODULE_LINK.format(region=region, id=module_type_id) if module_type_id else "N/A"
        lines.append(f"    {region.upper()}: {link}")
    return "\n".join(lines)


def main(argv=None, ask=input, out=sys.stdout):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["check"]:  # `jwt check URL ...`; any other word is a stage
        from api.tools import check

        return check.main(argv[1:], out=out)
    parser = argparse.ArgumentParser(
        prog="jwt", description="Mint a SECRET_KEY and a JWT for a relay module.")
    parser.add_argument("stage", help="a Zappa stage defined in 'zappa_settings.json'")
    parser.add_argument("-f", "--file",
                        help="a JSON file with the claims to encode (no prompting)")
    parser.add_argument("--provider",
                        help="mint for this provider's module (misp, pulsedive, otx, "
                             "cyberprotect) instead of module_settings.json's claims; the "
                             "token carries claim `provider` and serves that provider only")
    parser.add_argument("--reuse-secret", action="store_true",
                        help="sign with the SECRET_KEY environment variable instead of a "
                             "new secret (another module on the same Lambda)")
    args = parser.parse_args(argv)
    try:
        zappa_settings = load_json("zappa_settings.json")
        if not isinstance(zappa_settings, dict) or args.stage not in zappa_settings:
            raise CliError(f"stage '{args.stage}' does not exist")
        module_settings = load_json("module_settings.json")
        if not isinstance(module_settings, dict):
            raise CliError("file 'module_settings.json' is malformed")
        name, prompts = module_definition(module_settings, args.provider)
        if args.file:
            claims = load_json(args.file)
            if not isinstance(claims, dict):
                raise CliError(f"file '{args.file}' must hold a JSON object")
        else:
            claims = prompt_claims(prompts, ask)
        if args.provider:
            # Binds the token to its module: refused on other providers' routes.
            claims.setdefault("provider", args.provider)
        secret = os.environ.get("SECRET_KEY") if args.reuse_secret else generate_secret()
        if not secret:
            raise CliError("--reuse-secret needs the SECRET_KEY environment variable")
        if len(secret.encode("utf-8")) < MIN_SECRET_BYTES:
            raise CliError(f"SECRET_KEY is shorter than {MIN_SECRET_BYTES} bytes: the relay "
                           "refuses it; run without --reuse-secret for a new one")
        token = mint(claims, secret)
    except CliError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1
    print(render(name, token, secret, zappa_settings[args.stage], args.stage,
                 module_settings.get("region") or {}, args.provider), file=out)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
