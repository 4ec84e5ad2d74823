"""Ids shaped like Graph's: GUIDs for directory objects, long base64 ids for Outlook items.

Outlook ids are deliberately long and contain '-', '_' and '=' so that galsync's key sanitising is
exercised the way real ids exercise it.
"""

from __future__ import annotations

import base64
import os
import uuid


def directory_id() -> str:
    return str(uuid.uuid4())


def outlook_id(prefix: bytes = b"\x00\x00\x00\x00") -> str:
    """An immutable-id-like string, e.g. AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A...=."""
    return base64.urlsafe_b64encode(prefix + os.urandom(66)).decode()


def change_key() -> str:
    return base64.b64encode(os.urandom(12)).decode()
