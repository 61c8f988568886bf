"""Who may call the endpoint: one token rule for `raykd serve` and the RayService, and the bearer check.

The token comes from the environment (`$RAYKD_SERVE_TOKEN`, a Kubernetes Secret on a cluster) and is stripped,
so a Secret made with `--from-file` (a trailing newline) still matches what clients send. A token that is set
must be at least MIN_TOKEN_CHARS printable ASCII characters; an endpoint bound beyond loopback refuses to start
without one unless the config says `allow_public_without_auth: true`. Only the token's sha256 travels to the
replicas (deployment arguments live in the Serve controller); requests are compared in constant time.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass

from raykd.errors import ConfigError
from raykd.serve.config import ServeConfig

MIN_TOKEN_CHARS = 16
LOOPBACK = ("127.0.0.1", "localhost", "::1")
TOKEN_HINT = "e.g. export RAYKD_SERVE_TOKEN=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def serve_token(cfg: ServeConfig) -> str | None:
    """The endpoint's bearer token from `$<cfg.auth_token_env>`, stripped; None when the variable is unset.
    A variable that is set but blank, too short or not printable ASCII is a ConfigError: it is a mistake, and
    serving without the token the operator meant to set would fail open."""
    raw = os.environ.get(cfg.auth_token_env)
    if raw is None:
        return None
    token = raw.strip()
    where = f"${cfg.auth_token_env}"
    if not token:
        raise ConfigError(where, f"is set but blank; unset it or set a token of at least {MIN_TOKEN_CHARS} "
                                 f"characters ({TOKEN_HINT})")
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(where, f"has {len(token)} characters; a token needs at least {MIN_TOKEN_CHARS} "
                                 f"({TOKEN_HINT})")
    if not all("!" <= c <= "~" for c in token):
        raise ConfigError(where, "must be printable ASCII without spaces (clients send it in an HTTP header)")
    return token


def check_exposure(cfg: ServeConfig, token: str | None) -> None:
    """Beyond loopback an endpoint needs a token, unless the config explicitly allows anonymous access."""
    if cfg.host not in LOOPBACK and token is None and not cfg.allow_public_without_auth:
        raise ConfigError("serve.host", f"binding to {cfg.host} without a bearer token: set ${cfg.auth_token_env} "
                                        f"({TOKEN_HINT}), or allow_public_without_auth: true to serve anyone "
                                        "who can reach the port")


@dataclass(frozen=True)
class Refusal:
    status: int
    detail: str


def check_credentials(authorization: list[bytes], expected_sha256: str) -> Refusal | None:
    """None when the request's Authorization headers carry the token whose sha256 is `expected_sha256`.
    Exactly one header, scheme `Bearer` (any case, RFC 7235), then the token."""
    if len(authorization) > 1:
        return Refusal(400, "send one Authorization header")
    if not authorization:
        return Refusal(401, "missing bearer token (Authorization: Bearer <token>)")
    scheme, _, given = authorization[0].decode("latin-1").strip().partition(" ")
    given = given.strip()
    if scheme.lower() != "bearer" or not given:
        return Refusal(401, "expected Authorization: Bearer <token>")
    if not secrets.compare_digest(token_digest(given), expected_sha256):
        return Refusal(401, "wrong bearer token")
    return None
