"""`make demo`: the relay against its bundled provider emulators.

Starts every provider emulator and the relay on loopback, mints one
SECRET_KEY and a JWT per provider module (as `jwt dev` does), sends
observables.json to each provider's observe, deliberate, refer and health
routes over HTTP, and prints a summary per observable.
"""
import json

import requests

from api import providers
from api.tools import cli
from tests import demo_misp
from tests.ctim_check import ROOT, check
from tests.emulators import base
from tests.relay_server import spawn


def summarise(observe, deliberate, refer):
    data = observe.get("data", {})
    verdicts = {(v["observable"]["type"], v["observable"]["value"]): v["disposition_name"]
                for v in data.get("verdicts", {}).get("docs", [])}
    quick = {(v["observable"]["type"], v["observable"]["value"]): v["disposition_name"]
             for v in deliberate.get("data", {}).get("verdicts", {}).get("docs", [])}
    links = {}
    for link in refer.get("data", []):
        links[link["id"]] = link["url"]
    return verdicts, quick, links


def counts_for(data, observable):
    """Entities of `data` that name `observable`."""
    marker = {"type": observable["type"], "value": observable["value"]}
    result = {}
    for key in ("judgements", "sightings"):
        docs = data.get(key, {}).get("docs", [])
        result[key] = sum(1 for d in docs
                          if d.get("observable") == marker or marker in d.get("observables", []))
    return result


def main():
    observables = json.loads((ROOT / "observables.json").read_text())
    secret = cli.generate_secret()
    emulators, env = base.start_all()
    env.update({"SECRET_KEY": secret, "AWS_EC2_METADATA_DISABLED": "true"})
    process, relay = spawn(env)
    invalid = 0
    try:
        print(f"Relay at {relay}; emulators: "
              + ", ".join(f"{n} {e.url}" for n, e in emulators.items()))
        for name, emulator in emulators.items():
            provider = providers.get(name)
            token = cli.mint(emulator.module.CLAIMS, secret)
            headers = {"Authorization": f"Bearer {token}"}
            answers = {}
            for route in ("health", "observe/observables", "deliberate/observables",
                          "refer/observables"):
                emulator.reset()
                response = requests.post(f"{relay}/{name}/{route}", json=observables,
                                         headers=headers, timeout=30)
                answers[route] = response.json()
                answers[route + " calls"] = emulator.calls
                problems = check(f"/{name}/{route}", answers[route], observables)
                if problems:
                    invalid += 1
                    print(f"  !! {route}: body does not validate: {problems[:2]}")
            print(f"\n=== {provider.title}  (module URL: <lambda url>/{name})")
            print(f"health: {answers['health']}")
            observe = answers["observe/observables"]
            verdicts, quick, _ = summarise(observe, answers["deliberate/observables"],
                                           answers["refer/observables"])
            totals = {k: v["count"] for k, v in observe.get("data", {}).items()}
            print(f"observe: {totals or 'nothing found'}; upstream calls: "
                  f"{answers['observe/observables calls']}")
            for observable in observables:
                if observable["type"] not in provider.supported_types:
                    continue
                marker = (observable["type"], observable["value"])
                counts = counts_for(observe.get("data", {}), observable)
                print(f"  {observable['type']:8} {observable['value'][:56]:56} "
                      f"verdict={verdicts.get(marker, '-'):10} "
                      f"deliberate={quick.get(marker, '-'):10} "
                      f"judgements={counts['judgements']} sightings={counts['sightings']}")
            for error in observe.get("errors", []):
                print(f"  error: {error['code']}: {error['message']}")
            print(f"refer: {len(answers['refer/observables'].get('data', []))} links, "
                  f"upstream calls: {answers['refer/observables calls']}")
        invalid += demo_misp.show(relay, emulators["misp"], secret) if "misp" in emulators else 0
    finally:
        process.terminate()
        process.wait(5)
        for emulator in emulators.values():
            emulator.stop()
    print("\nEvery response validated against ../shared/ctim-schema." if not invalid
          else f"\n{invalid} response(s) failed validation.")
    return 1 if invalid else 0


if __name__ == "__main__":
    raise SystemExit(main())
