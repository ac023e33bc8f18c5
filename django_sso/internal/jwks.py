"""A source's signing keys: fetched through Django's cache, refetched at most once per cooldown.

``PyJWKClient`` is not used: it refetches on every unknown ``kid`` and wipes its cache when a
fetch fails (RP-CASES decision 11). Here, per source:

* keys live in process memory and in Django's cache (shared by every worker), for at most
  ``JWKS_MAX_AGE``; a steady-state lookup touches neither the network nor the cache;
* an unknown ``kid`` causes at most one fetch per ``JWKS_REFETCH_COOLDOWN`` per process
  (single-flight: concurrent misses wait for the one fetch, KEY-04);
* a failed fetch keeps the last good keys (KEY-05);
* unusable keys are dropped: ``oct``, ``use`` other than ``sig``, RSA under 2048 bits, broken
  points; a key set carrying private key members is refused whole (KEY-06).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jwt
from django.core.cache import caches

from django_sso.app_settings import app_settings
from django_sso.exceptions import ConfigurationError, ProviderError
from django_sso.internal.http import request_json

if TYPE_CHECKING:
    from django_sso.models import Source

logger = logging.getLogger("django_sso")

_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})
_ALG_KTY = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
_ALG_CRV = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
#: Keys tried for one token without ``kid`` (RP-CASES decision 2).
MAX_KEYS_WITHOUT_KID = 5
MIN_RSA_BITS = 2048
#: Key selections remembered per source (random kids are not remembered: they find nothing).
MAX_REMEMBERED_SELECTIONS = 64


@dataclass
class _KeyState:
    keys: list[jwt.PyJWK] = field(default_factory=list)
    fetched_at: float = 0.0
    last_attempt: float = float("-inf")
    #: Bumped whenever the set of keys changes: what was verified with the old set is re-checked.
    generation: int = 0
    #: ``_select`` results by (kid, alg) for the current keys: a token's key costs a lookup.
    selected: dict[tuple[str | None, str], list[jwt.PyJWK]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def replace(self, keys: list[jwt.PyJWK], fetched_at: float) -> None:
        if [k._jwk_data for k in keys] != [k._jwk_data for k in self.keys]:
            self.generation += 1
        self.keys, self.fetched_at, self.selected = keys, fetched_at, {}

    def select(self, kid: str | None, alg: str) -> list[jwt.PyJWK]:
        found = self.selected.get((kid, alg))
        if found is None:
            found = _select(self.keys, kid, alg)
            if found and len(self.selected) < MAX_REMEMBERED_SELECTIONS:
                self.selected[kid, alg] = found
        return found


_states: dict[str, _KeyState] = {}
_states_lock = threading.Lock()


def _state(source: Source) -> _KeyState:
    key = source.cache_key("jwks")
    state = _states.get(key)
    if state is None:
        with _states_lock:
            state = _states.setdefault(key, _KeyState())
    return state


def clear() -> None:
    """Forget every key held in process memory (tests, key-rotation tooling)."""
    with _states_lock:
        _states.clear()


def expected_kty(alg: str) -> str | None:
    """Return the JWK ``kty`` an asymmetric algorithm needs, or None for others."""
    return _ALG_KTY.get(alg[:2])


def parse_jwks(document: Any) -> list[jwt.PyJWK]:
    """Return the usable signature keys of a JWKS document.

    Raise :class:`ConfigurationError` when the document is not a JWKS or carries private keys.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ConfigurationError("sso.jwks.invalid", "not a JWK set")
    usable = []
    for jwk in document["keys"]:
        if not isinstance(jwk, dict):
            continue
        kty = jwk.get("kty")
        if kty != "oct" and _PRIVATE_MEMBERS & jwk.keys():
            raise ConfigurationError("sso.jwks.private_key", "the key set contains private key material")
        if kty not in {"RSA", "EC", "OKP"}:
            logger.warning("sso.jwks.key_skipped kid=%r reason=kty %r", jwk.get("kid"), kty)
            continue
        if jwk.get("use", "sig") != "sig" or ("key_ops" in jwk and "verify" not in jwk["key_ops"]):
            continue
        try:
            key = jwt.PyJWK(jwk)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as exc:
            logger.warning("sso.jwks.key_skipped kid=%r reason=%s", jwk.get("kid"), type(exc).__name__)
            continue
        if kty == "RSA" and key.key.key_size < MIN_RSA_BITS:
            logger.warning("sso.jwks.key_skipped kid=%r reason=weak RSA", jwk.get("kid"))
            continue
        usable.append(key)
    return usable


def _fits(key: jwt.PyJWK, alg: str) -> bool:
    jwk = key._jwk_data
    if jwk.get("kty") != expected_kty(alg):
        return False
    if "alg" in jwk and jwk["alg"] != alg:
        return False
    return not (alg in _ALG_CRV and jwk.get("crv") != _ALG_CRV[alg])


def _select(keys: list[jwt.PyJWK], kid: str | None, alg: str) -> list[jwt.PyJWK]:
    fitting = [k for k in keys if _fits(k, alg)]
    if kid is None:
        return fitting[:MAX_KEYS_WITHOUT_KID]
    return [k for k in fitting if k.key_id == kid]


def _fresh(state: _KeyState) -> bool:
    """Return whether a key set is held and younger than ``JWKS_MAX_AGE`` (RP-CASES decision 5)."""
    return bool(state.keys) and time.time() - state.fetched_at <= app_settings.JWKS_MAX_AGE


def _fetch(source: Source, state: _KeyState) -> None:
    """Fetch the key set once; on failure keep what was there (KEY-05)."""
    state.last_attempt = time.monotonic()
    try:
        keys = parse_jwks(request_json("GET", source.jwks_url, headers={"Accept": "application/json"}))
        if not keys:
            raise ConfigurationError("sso.jwks.empty", "no usable signature key")
    except (ProviderError, ConfigurationError) as exc:
        logger.warning("sso.jwks.fetch_failed source=%s reason=%s", source.slug, exc.code)
        return
    state.replace(keys, time.time())
    caches[app_settings.CACHE_ALIAS].set(
        source.cache_key("jwks"),
        {"fetched_at": state.fetched_at, "jwks": [k._jwk_data for k in keys]},
        timeout=app_settings.JWKS_MAX_AGE,
    )


def _load_shared(source: Source, state: _KeyState) -> None:
    """Adopt a newer key set another process put in Django's cache."""
    shared = caches[app_settings.CACHE_ALIAS].get(source.cache_key("jwks"))
    if shared and shared["fetched_at"] > state.fetched_at:
        state.replace(parse_jwks({"keys": shared["jwks"]}), shared["fetched_at"])


def holds(source: Source, kid: str | None, alg: str) -> bool:
    """Return whether the key set in memory has a key for ``kid``/``alg`` (never fetches)."""
    if source.jwks:
        return bool(_select(parse_jwks(source.jwks), kid, alg))
    state = _states.get(source.cache_key("jwks"))
    return state is not None and bool(_select(state.keys, kid, alg))


def generation(source: Source) -> int:
    """Return a number that changes whenever the source's key set in this process changes.

    A pasted JWKS changes only with the source itself (whose save is seen elsewhere): 0.
    """
    if source.jwks:
        return 0
    state = _states.get(source.cache_key("jwks"))
    return state.generation if state is not None else 0


def keys_for(source: Source, kid: str | None, alg: str) -> list[jwt.PyJWK]:
    """Return the source's keys that may verify a token with this ``kid`` and ``alg``.

    Never looks in another source's keys (IDT-14). Empty when nothing fits even after the one
    refetch the cooldown allows.
    """
    if source.jwks:
        return _select(parse_jwks(source.jwks), kid, alg)
    if not source.jwks_url:
        raise ConfigurationError("sso.jwks.missing", "the source has neither a JWKS URL nor a JWKS")
    state = _state(source)
    found = state.select(kid, alg) if _fresh(state) else []
    if found:
        return found
    seen = state.fetched_at
    with state.lock:
        if state.fetched_at == seen:
            _load_shared(source, state)
        found = _select(state.keys, kid, alg) if _fresh(state) else []
        cooled = time.monotonic() - state.last_attempt >= app_settings.JWKS_REFETCH_COOLDOWN
        if not found and state.fetched_at == seen and cooled:
            _fetch(source, state)
            # KEY-05: a failed refresh keeps the last good keys, but no longer than their max age.
            found = _select(state.keys, kid, alg) if _fresh(state) else []
    if not found and not _fresh(state):
        # No usable key set (the fetch failed, e.g. a refused redirect, and nothing younger than
        # JWKS_MAX_AGE is held): the provider is broken, not the token, so the sign-in answers
        # 502 like any other back-channel failure (TOK-01).
        raise ProviderError("sso.jwks.unavailable", "no usable key set could be fetched")
    return found
