"""The registry of providers this relay serves.

Each provider is a package `api.providers.<name>` exposing `PROVIDER`, an
instance of `api.providers.base.Provider`. Packages load on first use, so a
cold start imports only the provider a request names.
"""
import importlib
import threading

from api.errors import ProviderUnavailableError

NAMES = ("misp", "pulsedive", "otx", "cyberprotect")

_loaded = {}
_lock = threading.Lock()


def get(name):
    """The provider called `name` (one of NAMES)."""
    with _lock:
        provider = _loaded.get(name)
        if provider is None:
            try:
                module = importlib.import_module(f"api.providers.{name}")
                provider = module.PROVIDER
            except (ImportError, AttributeError):
                raise ProviderUnavailableError(
                    f"The '{name}' provider is not available in this relay "
                    "version") from None
            _loaded[name] = provider
        return provider


def available():
    """The providers that load, in registry order."""
    result = []
    for name in NAMES:
        try:
            result.append(get(name))
        except ProviderUnavailableError:
            pass
    return result
