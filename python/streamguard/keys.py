"""Where the control plane's secrets live: in files under a keys directory, never in the code.

The signing key is configuration, so every deployment has its own and a leaked repository leaks
nothing. The directory is ``$STREAMGUARD_KEYS_DIR`` or ``<var>/keys`` (mode 0700); each secret
is one file (mode 0600) created on first use and reused across restarts, because a new JWT
secret would log everybody out and a new proxy salt would make old proxy hashes unmatchable.

=======================  ==========================================================
``jwt.key``              HS256 secret for API bearer tokens: 32 random bytes, base64;
                         ``$STREAMGUARD_JWT_KEY`` (the base64 secret) overrides it
``signoff-ed25519.pem``  the platform's Ed25519 sign-off key (created by the sign-off
                         module; only its path is decided here)
``proxy.salt``           salt for hashing proxy signers' document numbers: 32 random
                         bytes, base64
=======================  ==========================================================
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from streamguard.errors import ConfigError

__all__ = ["JWT_KEY_ENV", "KEYS_DIR_ENV", "SECRET_BYTES", "Keys"]

KEYS_DIR_ENV = "STREAMGUARD_KEYS_DIR"
JWT_KEY_ENV = "STREAMGUARD_JWT_KEY"
# HS256 needs at least the hash's size (RFC 7518 §3.2); the salt gets the same.
SECRET_BYTES = 32

_HOW_TO_CREATE = (
    "run `streamguard token create ...` once with the same --var and ${env} (it creates the "
    "file), or write {n} random bytes there in base64: `openssl rand -base64 {n} > {path}`"
)


@dataclass(frozen=True, kw_only=True)
class Keys:
    """Paths of the control plane's secrets, plus the JWT secret from the environment if set.

    Build it with :meth:`from_env`; read secrets with :meth:`load_jwt_secret` and
    :meth:`load_proxy_salt`.
    """

    dir: Path
    jwt_key: Path
    signing_key: Path
    proxy_salt: Path
    # $STREAMGUARD_JWT_KEY as given (base64); decoded and checked only when loaded.
    jwt_key_env: str | None = None

    @classmethod
    def in_dir(cls, keys_dir: Path, *, jwt_key_env: str | None = None) -> Keys:
        """The standard file names inside ``keys_dir``."""
        return cls(
            dir=keys_dir,
            jwt_key=keys_dir / "jwt.key",
            signing_key=keys_dir / "signoff-ed25519.pem",
            proxy_salt=keys_dir / "proxy.salt",
            jwt_key_env=jwt_key_env,
        )

    @classmethod
    def from_env(cls, var_dir: Path, environ: Mapping[str, str] | None = None) -> Keys:
        """``$STREAMGUARD_KEYS_DIR`` or ``<var_dir>/keys``; ``$STREAMGUARD_JWT_KEY`` if set."""
        env = os.environ if environ is None else environ
        keys_dir = Path(env[KEYS_DIR_ENV]) if env.get(KEYS_DIR_ENV) else Path(var_dir) / "keys"
        return cls.in_dir(keys_dir, jwt_key_env=env.get(JWT_KEY_ENV) or None)

    def load_jwt_secret(self, create: bool = False) -> bytes:
        """The HS256 secret: ``$STREAMGUARD_JWT_KEY`` if set, else the ``jwt.key`` file
        (created when missing and ``create``). Raises :class:`ConfigError` naming the source."""
        if self.jwt_key_env is not None:
            return _decode_secret(self.jwt_key_env, f"${JWT_KEY_ENV}")
        return self._load(self.jwt_key, create)

    def load_proxy_salt(self, create: bool = False) -> bytes:
        """The salt for proxy document-number hashes (``proxy.salt``, created when missing and
        ``create``). Raises :class:`ConfigError` naming the path."""
        return self._load(self.proxy_salt, create)

    def _load(self, path: Path, create: bool) -> bytes:
        try:
            text = path.read_text(encoding="ascii")
        except FileNotFoundError:
            if not create:
                how = _HOW_TO_CREATE.format(env=KEYS_DIR_ENV, n=SECRET_BYTES, path=path)
                raise ConfigError(f"missing secret {path}: {how}") from None
            return _create_secret(path)
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"cannot read secret {path}: {e}") from e
        return _decode_secret(text, str(path))


def _decode_secret(text: str, source: str) -> bytes:
    try:
        secret = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{source} is not base64 (expected {SECRET_BYTES} bytes)") from None
    if len(secret) < SECRET_BYTES:
        raise ConfigError(f"{source} holds {len(secret)} bytes; at least {SECRET_BYTES} needed")
    return secret


def _make_private_dir(path: Path) -> None:
    if path.is_dir():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
        # mkdir's mode is masked by the umask; secrets want exactly owner-only.
        path.chmod(0o700)


def _create_secret(path: Path) -> bytes:
    """Write a fresh secret to ``path`` atomically, or read the one a concurrent caller wrote.

    The secret is written and fsynced under a temporary name, then hard-linked into place: a
    link never replaces an existing file, so two processes starting together agree on one
    secret, and nobody ever reads a half-written file.
    """
    _make_private_dir(path.parent)
    secret = secrets.token_bytes(SECRET_BYTES)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(base64.b64encode(secret) + b"\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            # Someone else won the race: theirs is the secret.
            return _decode_secret(path.read_text(encoding="ascii"), str(path))
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as e:
        raise ConfigError(f"cannot create secret {path}: {e}") from e
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return secret
