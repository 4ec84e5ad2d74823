"""Ids shaped like Graph's: GUIDs for directory objects and request ids, long base64 ids for Outlook items.

Outlook ids are deliberately long and contain '-', '_' and '=' so that galsync's key sanitising is
exercised the way real ids exercise it.

Ids must be unique, not unpredictable: they come from a private generator seeded once from the OS (a system
call per id cost more than the rest of making one). It is private so that code seeding the global `random`
module (hypothesis does, per example) never makes the emulator repeat an id.
"""

from __future__ import annotations

import binascii
import os
import random

_rng = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _rng.seed(os.urandom(32)))  # a forked child never repeats its parent

# A version 4, variant 1 UUID: the version nibble is 4 and the two top bits of the variant byte are 10.
_UUID_CLEAR = ~((0xF << 76) | (0x3 << 62))
_UUID_SET = (0x4 << 76) | (0x2 << 62)


def random_uuid() -> str:
    """A random (version 4) UUID in its usual text form, as Graph's object and request ids are."""
    h = f"{(_rng.getrandbits(128) & _UUID_CLEAR) | _UUID_SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def directory_id() -> str:
    return random_uuid()


def outlook_id(prefix: bytes = b"\x00\x00\x00\x00") -> str:
    """An immutable-id-like string, e.g. AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A...=."""
    # base64.urlsafe_b64encode(prefix + randbytes(66)), without its layers of calls: every write makes one.
    raw = prefix + _rng.getrandbits(528).to_bytes(66, "little")
    return binascii.b2a_base64(raw, newline=False).translate(_URLSAFE).decode()


def change_key() -> str:
    return binascii.b2a_base64(_rng.getrandbits(96).to_bytes(12, "little"), newline=False).decode()


_URLSAFE = bytes.maketrans(b"+/", b"-_")
