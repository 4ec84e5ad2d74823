"""Opaque, tamper-evident delta and skip tokens.

Graph's tokens are opaque and carry the original query (docs/graph-facts.md, "Delta query"). Ours are
url-safe base64 of a small JSON state plus an HMAC, so a client cannot edit one into something valid,
and carry the tenant's delta epoch so that tests can expire every token at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from typing import Any

_KEY = os.urandom(32)


def encode(state: dict[str, Any]) -> str:
    raw = json.dumps(state, separators=(",", ":"), sort_keys=True).encode()
    mac = hmac.new(_KEY, raw, hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(mac + raw).decode().rstrip("=")


def decode(token: str) -> dict[str, Any] | None:
    """The state inside a token, or None if the token is not one we issued (the caller picks the error)."""
    try:
        blob = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError):
        return None
    mac, raw = blob[:12], blob[12:]
    if not hmac.compare_digest(mac, hmac.new(_KEY, raw, hashlib.sha256).digest()[:12]):
        return None
    try:
        state = json.loads(raw)
    except ValueError:
        return None
    return state if isinstance(state, dict) else None
