"""The runtime's two exception types (like pykka: one base, one specific)."""

from __future__ import annotations

__all__ = ["CodecError", "PeerActorError"]


class PeerActorError(Exception):
    """Base of every error raised by the peeractor runtime (bad address, unknown node...)."""


class CodecError(PeerActorError):
    """A frame could not be encoded or decoded: unknown tag, malformed frame, bad fields."""
