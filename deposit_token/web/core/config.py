"""What one web server is configured with: the database, cookies, sessions, login limits, the live feed, and
(optionally) the chain to follow."""

from __future__ import annotations

from dataclasses import dataclass, field

from deposit_token.web.core.accounts import Limits


@dataclass(frozen=True)
class Follow:
    """The chain the server's own indexer follows (``--follow``): as ``audit index --follow`` would."""

    rpc_url: str
    token: str
    start_block: int
    confirmations: int = 0
    poll_interval: float = 0.5


@dataclass(frozen=True)
class WebConfig:
    """db_url: the audit database (SQLite file or PostgreSQL URL; migrated to the current schema on start).
    secure_cookies: mark cookies Secure (the server is reached over TLS, directly or through a proxy).
    session_idle / session_lifetime: seconds a session lives unused / at most.
    limits: login throttling. live_poll: seconds between two looks at the newest payment (server-sent events).
    public_max_age: Cache-Control max-age of the public portal and API. follow: the chain to index, if any.
    shared_dir: the folder the server's worker processes share (``core.shared``; serve makes one, else the app).
    totp_key_file: the key file of the TOTP secrets (``core.totpkeys``; None: $DEPOSIT_TOKEN_TOTP_KEY_FILE or the
    default beside the audit databases).
    """

    db_url: str
    secure_cookies: bool = False
    session_idle: int = 30 * 60
    session_lifetime: int = 12 * 60 * 60
    limits: Limits = field(default_factory=Limits)
    live_poll: float = 0.5
    public_max_age: int = 60
    follow: Follow | None = None
    shared_dir: str | None = None
    totp_key_file: str | None = None
