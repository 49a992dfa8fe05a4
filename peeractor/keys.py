"""A run's ZeroMQ CURVE keys: only processes holding them can talk to the run's agents.

``generate_run_keys(dir)`` writes two certificate pairs with ``zmq.auth``:
``server.key``/``server.key_secret`` (every agent's receiving socket) and
``client.key``/``client.key_secret`` (every agent's sending sockets), plus
``allowed/client.key``, the only client key the agents' ZAP authenticator accepts.
Copy the directory to every agent of the run (secrets are written mode 0600).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import zmq.auth

from peeractor.errors import PeerActorError

__all__ = ["RunKeys", "generate_run_keys", "load_run_keys"]


@dataclass(frozen=True)
class RunKeys:
    """Z85-encoded CURVE keys of a run, and where the allowed client keys are."""

    server_public: bytes
    server_secret: bytes
    client_public: bytes
    client_secret: bytes
    allowed_dir: Path
    """Directory of the client public keys the receiving side accepts (``*.key``)."""


def generate_run_keys(directory: str | os.PathLike[str], *, overwrite: bool = False) -> RunKeys:
    """Create the run's keys in ``directory`` (kept if present unless ``overwrite``)."""
    root = Path(directory)
    if not overwrite and (root / "server.key_secret").exists():
        return load_run_keys(root)
    root.mkdir(parents=True, exist_ok=True)
    allowed = root / "allowed"
    if allowed.exists():
        shutil.rmtree(allowed)
    allowed.mkdir()
    for name in ("server", "client"):
        zmq.auth.create_certificates(root, name)
        (root / f"{name}.key_secret").chmod(0o600)
    shutil.copy(root / "client.key", allowed / "client.key")
    return load_run_keys(root)


def _load(path: Path) -> tuple[bytes, bytes]:
    if not path.is_file():
        raise PeerActorError(f"missing key file {path}")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (ValueError, OSError) as exc:
        raise PeerActorError(f"bad key file {path}: {exc}") from None
    if secret is None:
        raise PeerActorError(f"key file {path} holds no secret key")
    return public, secret


def load_run_keys(directory: str | os.PathLike[str]) -> RunKeys:
    """The keys ``generate_run_keys`` wrote in ``directory``."""
    root = Path(directory)
    server_public, server_secret = _load(root / "server.key_secret")
    client_public, client_secret = _load(root / "client.key_secret")
    allowed = root / "allowed"
    if not any(allowed.glob("*.key")):
        raise PeerActorError(f"no allowed client key in {allowed}")
    return RunKeys(server_public, server_secret, client_public, client_secret, allowed)
