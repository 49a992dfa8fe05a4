"""The runtime's two exception types (like pykka: one base, one specific)."""

from __future__ import annotations

__all__ = ["CodecError", "PeerActorError"]


class PeerActorError(Exception):
    """Base of every error raised by the peeractor runtime (bad address, unknown node...)."""


class CodecError(PeerActorError):
    """A frame could not be encoded or decoded: unknown tag, malformed frame, bad fields.

    ``cause`` says which check refused it (``peeractor.codec.CAUSES``); ``tag`` is the
    message tag when it was known (else ``""``), so receivers can count refusals by type.
    """

    def __init__(self, text: str, *, cause: str = "malformed", tag: str = "") -> None:
        super().__init__(text)
        self.cause = cause
        self.tag = tag
