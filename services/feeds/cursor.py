"""Cursors: where a reader of a subscription stands after a batch, signed by feeds.

A cursor names the subscription, its replay epoch and, per partition, the offset of the next
record to read (Kafka's meaning of a committed offset). It is opaque to clients and signed with
feeds' secret, so an acknowledgement can only name positions feeds actually delivered up to: a
forged or edited cursor is refused, and no ack can skip records that were never delivered.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass

from services.common.i18n import N_, Sentence
from services.feeds.exceptions import InvalidCursor

_SIGNATURE_BYTES = 12
MAX_CURSOR_CHARS = 8192


@dataclass(frozen=True, slots=True)
class Cursor:
    subscription_id: str
    epoch: int
    offsets: dict[int, int]
    """partition -> next offset to read."""


class CursorCodec:
    def __init__(self, secret: bytes) -> None:
        self._key = hmac.digest(secret, b"citybase/feeds-cursor/v1", hashlib.sha256)

    def _sign(self, payload: bytes) -> bytes:
        return hmac.digest(self._key, payload, hashlib.sha256)[:_SIGNATURE_BYTES]

    def encode(self, cursor: Cursor) -> str:
        payload = json.dumps(
            {
                "s": cursor.subscription_id,
                "e": cursor.epoch,
                "o": {str(p): o for p, o in sorted(cursor.offsets.items())},
            },
            separators=(",", ":"),
        ).encode()
        token = payload + self._sign(payload)
        return base64.urlsafe_b64encode(token).rstrip(b"=").decode("ascii")

    def decode(self, text: str, subscription_id: str) -> Cursor:
        """The cursor ``text`` of ``subscription_id``; :class:`InvalidCursor` for anything else."""
        if not text or len(text) > MAX_CURSOR_CHARS:
            raise InvalidCursor(Sentence(N_("the cursor is empty or too long")), path="/cursor")
        try:
            token = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (binascii.Error, ValueError):
            raise InvalidCursor(Sentence(N_("the cursor is not one feeds issued")), path="/cursor") from None
        payload, signature = token[:-_SIGNATURE_BYTES], token[-_SIGNATURE_BYTES:]
        if len(token) <= _SIGNATURE_BYTES or not hmac.compare_digest(signature, self._sign(payload)):
            raise InvalidCursor(Sentence(N_("the cursor is not one feeds issued")), path="/cursor")
        data = json.loads(payload)
        if data.get("s") != subscription_id:
            raise InvalidCursor(Sentence(N_("the cursor belongs to another subscription")), path="/cursor")
        return Cursor(subscription_id, int(data["e"]), {int(p): int(o) for p, o in data["o"].items()})
