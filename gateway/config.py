"""Settings: one declarative table. docs/configuration.md is generated from it (and a test
checks that it is current). Each setting reads the first of its environment variables that is
set; command-line flags override the environment."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec

LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"

class Setting(msgspec.Struct, frozen=True):
    name: str
    env: tuple[str, ...]
    type: type
    default: Any
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("host", ("CONVERGER_HOST",), str, "127.0.0.1", "Address to listen on."),
    Setting("port", ("CONVERGER_PORT", "PORT"), int, 4000, "HTTP port."),
    Setting("data_dir", ("CONVERGER_DATA_DIR",), str, "./data",
            "Directory for the database, the generated secret key and uploads."),
    Setting("db", ("CONVERGER_DB",), str, "",
            "SQLite database file. Default: `<data_dir>/converger.db`."),
    Setting("database_url", ("CONVERGER_DATABASE_URL",), str, "",
            "PostgreSQL instead of the SQLite file: `postgresql://user:password@host:5432/dbname` "
            "(any libpq URL, options after `?`, e.g. `sslmode=require`; docs/scaling.md). "
            "Unset: the SQLite file."),
    Setting("secret_key", ("CONVERGER_SECRET_KEY", "SECRET_KEY_BASE"), str, "",
            "Signs tokens and sessions and derives the encryption key for stored secrets. "
            "Generated and kept in `<data_dir>/secret_key` when unset."),
    Setting("admin_token", ("CONVERGER_ADMIN_TOKEN",), str, "",
            "An admin API token accepted by the management API, in addition to tokens made "
            "with `converger admin token create`."),
    Setting("synchronous", ("CONVERGER_SYNCHRONOUS",), str, "NORMAL",
            "SQLite `synchronous`: NORMAL (durable across process crashes) or FULL "
            "(also across power loss)."),
    Setting("db_max_pages", ("CONVERGER_DB_MAX_PAGES",), int, 0,
            "Cap on the database file, in pages (4 KiB). Writes past it fail with 507 "
            "`storage_full` while reads go on; 0 = no cap (the disk is the limit)."),
    Setting("public_url", ("CONVERGER_PUBLIC_URL",), str, "",
            "Public base URL (e.g. `https://chat.example.com`), used to build `streamUrl`. "
            "Default: taken from the request."),
    Setting("pipeline", ("CONVERGER_PIPELINE",), str, "queue",
            "Delivery backend: `queue` (durable, retried), `rabbitmq` or `nats` (the same table, "
            "the jobs carried by a broker to `converger deliver` workers: docs/pipelines.md) or "
            "`inline` (one attempt inside the request; development only)."),
    Setting("pipeline_url", ("CONVERGER_PIPELINE_URL",), str, "",
            "The broker of `CONVERGER_PIPELINE=rabbitmq` (`amqp://user:password@host:5672/vhost`) "
            "or `nats` (`nats://host:4222`, JetStream)."),
    Setting("pipeline_consume", ("CONVERGER_PIPELINE_CONSUME",), bool, True,
            "With a broker pipeline: `serve` also runs delivery workers that consume the broker's "
            "jobs (on by default; off: only `converger deliver` processes send)."),
    Setting("delivery_concurrency", ("CONVERGER_DELIVERY_CONCURRENCY",), int, 20,
            "Number of delivery workers."),
    Setting("webhook_timeout", ("CONVERGER_WEBHOOK_TIMEOUT",), float, 10.0,
            "Seconds a delivery attempt may take (connect + response) before it counts as a "
            "failed, retryable attempt."),
    Setting("delivery_lease", ("CONVERGER_DELIVERY_LEASE",), float, 0.0,
            "Seconds a claimed delivery (or health alert) stays leased to its worker. When a lease "
            "runs out (the worker hung, or its outcome could not be recorded) the rescuer gives it "
            "back and it is sent again, with the same `webhook-id`. 0 = automatic: "
            "max(120, 4 × `CONVERGER_WEBHOOK_TIMEOUT` + 30) for deliveries, max(120, 2 × "
            "`CONVERGER_WEBHOOK_TIMEOUT` + 30) for alerts. A lease shorter than an attempt sends "
            "that attempt twice (tests use one to prove the rescue)."),
    Setting("lease_rescue_interval", ("CONVERGER_LEASE_RESCUE_INTERVAL",), float, 30.0,
            "Seconds between two rounds of the rescuers that reclaim expired delivery and alert "
            "leases on a running server (at start-up every lease is reclaimed at once)."),
    Setting("backoff_scale", ("CONVERGER_BACKOFF_SCALE",), float, 1.0,
            "Multiplier on every retry wait (backoff and `Retry-After`). For tests only: "
            "`0.001` turns the 30/90/270/810 s schedule into milliseconds."),
    Setting("clock_file", ("CONVERGER_CLOCK_FILE",), str, "",
            "For tests only, never in production: a file holding a number of seconds the "
            "gateway's clock runs ahead of the system's, read again whenever it changes (tests "
            "of the WhatsApp 24-hour window and of expiring links move a running server's time "
            "with it). Unset: the system clock."),
    Setting("max_body_bytes", ("CONVERGER_MAX_BODY_BYTES",), int, 1_048_576,
            "Largest JSON request body accepted (bytes)."),
    Setting("max_upload_bytes", ("CONVERGER_MAX_UPLOAD_BYTES",), int, 10_485_760,
            "Largest upload accepted (bytes)."),
    Setting("activity_list_cap", ("CONVERGER_ACTIVITY_LIST_CAP",), int, 10_000,
            "Most activities returned by the compatible activity list."),
    Setting("ws_idle_timeout", ("CONVERGER_WS_IDLE_TIMEOUT",), int, 60,
            "Seconds a socket may stay silent (no heartbeat, no message) before it is closed "
            "(checked every sixth of it: closed within 7/6 of it)."),
    Setting("ws_max_frame_bytes", ("CONVERGER_WS_MAX_FRAME_BYTES",), int, 1_048_576,
            "Largest WebSocket message accepted from a client (bytes); larger closes with 1009."),
    Setting("ws_send_queue", ("CONVERGER_WS_SEND_QUEUE",), int, 1000,
            "Frames queued for one socket before it counts as too slow and is dropped."),
    Setting("gc_full_every", ("CONVERGER_GC_FULL_EVERY",), float, 600.0,
            "Seconds between full collections of Python's cyclic garbage collector. Between "
            "them, what lives long (the app after start-up, open sockets) is kept out of its "
            "collections (`gc.freeze`), which would otherwise stop the event loop for tens to "
            "hundreds of milliseconds with thousands of sockets open; cyclic garbage among "
            "those objects waits for the next full collection, which also comes early once as "
            "many sockets have closed as are open. 0: Python's own schedule."),
    Setting("workers", ("CONVERGER_WORKERS",), str, "auto",
            "Processes serving the one port (`converger serve --workers N`): `auto` = the "
            "machine's cores, at most 8; `1` = one process, no supervisor. They share the "
            "database; see docs/architecture.md."),
    Setting("worker_stuck_after", ("CONVERGER_WORKER_STUCK_AFTER",), float, 20.0,
            "Seconds a worker process's event loop may go without its heartbeat before the "
            "supervisor kills and restarts it (a stuck worker)."),
    Setting("worker_header", ("CONVERGER_WORKER_HEADER",), bool, False,
            "Add `x-converger-worker: <pid>` to every answer (tests and debugging)."),
    Setting("log_level", ("CONVERGER_LOG_LEVEL",), str, "INFO", "Log level."),
    Setting("access_log", ("CONVERGER_ACCESS_LOG",), bool, False, "Log every request."),
    # -- operations (rate limits, CORS, metrics, replication, background jobs) ---------------
    Setting("rate_limit_tokens", ("CONVERGER_RATE_LIMIT_TOKENS",), int, 10,
            "Token requests per client IP per minute (`POST /api/v1/tokens`, "
            "`/api/v1/converger/tokens/*`); 0 disables."),
    Setting("rate_limit_activities", ("CONVERGER_RATE_LIMIT_ACTIVITIES",), int, 6000,
            "Activities a tenant may create per minute; 0 disables."),
    Setting("rate_limit_inbound", ("CONVERGER_RATE_LIMIT_INBOUND",), int, 6000,
            "Provider webhooks (`/api/v1/channels/:id/inbound` and `/status`) per channel per "
            "minute; 0 disables."),
    Setting("rate_limit_deliveries", ("CONVERGER_RATE_LIMIT_DELIVERIES",), int, 0,
            "Outbound deliveries per channel per second (deliveries wait, never fail); 0 = no limit."),
    Setting("cors_origins", ("CONVERGER_CORS_ORIGINS", "CORS_ORIGINS"), str,
            "http://127.0.0.1:5500,http://localhost:5500",
            "Comma-separated browser origins allowed by CORS (`*` allows any)."),
    Setting("admin_ip_whitelist", ("CONVERGER_ADMIN_IP_WHITELIST", "ADMIN_IP_WHITELIST"), str,
            "127.0.0.1,::1", "Comma-separated IPs or CIDRs allowed to reach admin pages and `/metrics`."),
    Setting("trusted_proxies", ("CONVERGER_TRUSTED_PROXIES",), str, "",
            "Comma-separated IPs or CIDRs of reverse proxies whose `X-Forwarded-For` is believed."),
    Setting("smtp_port", ("CONVERGER_SMTP_PORT",), int, 0,
            "Port of the embedded SMTP server that takes inbound mail for `email_smtp` "
            "channels (point an MX or a relay at it); 0 = off."),
    Setting("smtp_host", ("CONVERGER_SMTP_HOST",), str, "",
            "Address the SMTP server listens on. Default: `CONVERGER_HOST`."),
    Setting("smtp_max_bytes", ("CONVERGER_SMTP_MAX_BYTES",), int, 26_214_400,
            "Largest mail the SMTP server takes (SIZE); a channel's `max_message_bytes` may "
            "be lower."),
    Setting("prometheus_port", ("CONVERGER_PROMETHEUS_PORT", "PROMETHEUS_PORT"), int, 0,
            "When set, `/metrics` is also served on this port (no allowlist there); 0 = off."),
    Setting("deprecated_routes", ("CONVERGER_DEPRECATED_ROUTES",), str, "",
            "Routes to announce as deprecated (docs/api-versioning.md), besides those the code "
            "marks: `;`-separated `METHOD /path/{param} SINCE [SUNSET [LINK]]` (ISO 8601 dates). "
            "They answer with `Deprecation` and `Sunset` headers and are `deprecated` in the "
            "OpenAPI document."),
    Setting("otel_endpoint", ("OTEL_EXPORTER_OTLP_ENDPOINT",), str, "",
            "OpenTelemetry collector (OTLP/HTTP, e.g. `http://127.0.0.1:4318`): when set, requests "
            "and delivery attempts are traced (needs the `otel` extra; the binary has it)."),
    Setting("events_url", ("CONVERGER_EVENTS_URL",), str, "",
            "Activity event stream (docs/pipelines.md): `nats://host:4222` (JetStream) or "
            "`amqp://user:password@host:5672/vhost` (RabbitMQ). When set, every committed activity, "
            "delivery status change and conversation change is published from the store by one "
            "relay; empty = off."),
    Setting("events_poll", ("CONVERGER_EVENTS_POLL",), float, 2.0,
            "Seconds between the event relay's safety looks at the store when no wake-up came "
            "(commits of every process and node wake it at once; this only bounds a lost one)."),
    Setting("replica_url", ("CONVERGER_REPLICA_URL",), str, "",
            "Litestream replica (`file:///path` or `s3://bucket/path`). When set, `serve` restores a "
            "missing database from it and replicates continuously."),
    Setting("replica_endpoint", ("CONVERGER_REPLICA_ENDPOINT",), str, "",
            "S3-compatible endpoint URL (MinIO, R2, …); empty for AWS."),
    Setting("replica_region", ("CONVERGER_REPLICA_REGION", "AWS_REGION"), str, "",
            "S3 region."),
    Setting("replica_access_key_id", ("CONVERGER_REPLICA_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"), str,
            "", "S3 access key id."),
    Setting("replica_secret_access_key",
            ("CONVERGER_REPLICA_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"), str, "",
            "S3 secret access key."),
    Setting("replica_force_path_style", ("CONVERGER_REPLICA_FORCE_PATH_STYLE",), bool, False,
            "Use path-style S3 URLs (most S3-compatible servers need it)."),
    Setting("replica_sync_interval", ("CONVERGER_REPLICA_SYNC_INTERVAL",), str, "1s",
            "How often Litestream ships new WAL data to the replica (a Go duration)."),
    Setting("wal_truncate_pages", ("CONVERGER_WAL_TRUNCATE_PAGES",), int, 16384,
            "While Litestream runs: WAL size in pages (4 KiB) at which it forces a TRUNCATE "
            "checkpoint, bounding the WAL under sustained writes."),
    Setting("health_interval", ("CONVERGER_HEALTH_INTERVAL",), int, 300,
            "Seconds between channel health checks; 0 disables."),
    Setting("expiry_interval", ("CONVERGER_EXPIRY_INTERVAL",), int, 3600,
            "Seconds between conversation expiry runs; 0 disables."),
    Setting("conversation_idle", ("CONVERGER_CONVERSATION_IDLE",), int, 86400,
            "Seconds without activity after which an active conversation is closed."),
    Setting("prune_interval", ("CONVERGER_PRUNE_INTERVAL",), int, 3600,
            "Seconds between prunings of old health checks, finished alerts and (with a retention set) finished deliveries; 0 disables."),
    Setting("analytics_interval", ("CONVERGER_ANALYTICS_INTERVAL",), int, 10,
            "Seconds between runs of the analytics rollup job (new activities counted from the "
            "change feed, minutes folded into hours and days, docs/analytics.md); reports count "
            "what it has not yet themselves, so a longer interval makes them dearer. 0 disables "
            "(activities are then no longer counted, and charts lag behind beyond the last hour)."),
    Setting("health_retention_days", ("CONVERGER_HEALTH_RETENTION_DAYS",), int, 7,
            "Days of channel health history (and of sent or failed alerts) kept."),
    Setting("delivery_retention_days", ("CONVERGER_DELIVERY_RETENTION_DAYS",), int, 0,
            "Days a finished delivery (sent, delivered, read or failed) is kept after its last "
            "change; the `prune` job deletes older ones. 0 keeps them: they are each activity's "
            "delivery ticks."),
    # -- security limits (docs/security.md) ---------------------------------------------------
    Setting("max_connections", ("CONVERGER_MAX_CONNECTIONS",), int, 0,
            "Open connections (HTTP and WebSocket) in all; more are answered 503 and closed. "
            "0 = the file limit (raised to its hard limit at start-up) less 128."),
    Setting("max_connections_per_ip", ("CONVERGER_MAX_CONNECTIONS_PER_IP",), int, 256,
            "Open connections one client IP may hold; more are answered 503 and closed. Trusted "
            "proxies are exempt. 0 = no cap."),
    Setting("connection_reserve", ("CONVERGER_CONNECTION_RESERVE",), int, 64,
            "The last connections under `max_connections` go only to IPs holding fewer than 4 "
            "and to the admin allowlist, so health checks and the admin panel still answer."),
    Setting("header_timeout", ("CONVERGER_HEADER_TIMEOUT",), float, 10.0,
            "Seconds from a request's first byte until its headers are complete (a slow client "
            "gets 408 and a close, however steadily it trickles)."),
    Setting("body_timeout", ("CONVERGER_BODY_TIMEOUT",), float, 120.0,
            "Seconds after the headers until the request body is complete."),
    Setting("max_sockets_per_token", ("CONVERGER_MAX_SOCKETS_PER_TOKEN",), int, 100,
            "Open WebSockets per token in the whole gateway (summed over its worker processes); more "
            "are refused with 429 `too_many_sockets`. 0 = no cap."),
    Setting("max_activity_bytes", ("CONVERGER_MAX_ACTIVITY_BYTES",), int, 65_536,
            "Largest activity accepted: its text, attachments, metadata and extra together, as "
            "JSON (bytes); larger is 413 `activity_too_large`. 0 = only the body limit."),
    Setting("list_max_bytes", ("CONVERGER_LIST_MAX_BYTES",), int, 8_388_608,
            "The compatible activity list stops before this many bytes of activity content "
            "(besides `activity_list_cap` rows); 0 = rows only."),
    Setting("tenant_upload_quota", ("CONVERGER_TENANT_UPLOAD_QUOTA",), int, 1_073_741_824,
            "Bytes of uploads one tenant may store; an upload past it is 413 `storage_quota`. "
            "0 = no quota."),
    Setting("rate_limit_conversations", ("CONVERGER_RATE_LIMIT_CONVERSATIONS",), int, 600,
            "Conversations a tenant may create per minute (API, Converger and Direct Line); "
            "0 disables."),
    Setting("outbound_allow", ("CONVERGER_OUTBOUND_ALLOW",), str, "",
            "Comma-separated IP ranges deliveries and alerts may reach although they are not "
            "public (e.g. `10.0.0.0/8` for on-prem receivers, `127.0.0.0/8,::1` for local "
            "stand-ins). Loopback, private, link-local, metadata and other non-public addresses "
            "are refused otherwise, checked on every connection (docs/security.md)."),
    Setting("outbound_hosts", ("CONVERGER_OUTBOUND_HOSTS",), str, "",
            "Comma-separated `name=address` pins for outbound requests (like `/etc/hosts`); "
            "the address is checked like any other."),
    Setting("login_fail_per_ip", ("CONVERGER_LOGIN_FAIL_PER_IP",), int, 20,
            "Failed logins (admin panel and portal) one IP may make in 5 minutes, whatever the "
            "e-mail, before its logins are refused (429); 5 per IP and e-mail always. 0 = no cap."),
    Setting("login_fail_total", ("CONVERGER_LOGIN_FAIL_TOTAL",), int, 1000,
            "Failed logins from all IPs in 5 minutes before every login is refused for the rest "
            "of the window (a distributed spray). 0 = no cap."),
    Setting("login_hash_threads", ("CONVERGER_LOGIN_HASH_THREADS",), int, 2,
            "Threads checking passwords (argon2), apart from the shared pool."),
    Setting("login_hash_queue", ("CONVERGER_LOGIN_HASH_QUEUE",), int, 32,
            "Password checks that may wait for those threads; a login past it is refused at "
            "once (503) rather than queued."),
    Setting("session_lifetime", ("CONVERGER_SESSION_LIFETIME",), int, 43_200,
            "Lifetime of an admin panel or portal login session (seconds)."),
    # -- single sign-on to the admin panel (gateway/sso.py, docs/admin.md#single-sign-on) --------
    Setting("oidc_issuer", ("CONVERGER_OIDC_ISSUER",), str, "",
            "OpenID Connect issuer URL of the identity provider admins sign in with (its "
            "`/.well-known/openid-configuration` is read); empty = no single sign-on."),
    Setting("oidc_client_id", ("CONVERGER_OIDC_CLIENT_ID",), str, "",
            "The gateway's client id at the identity provider."),
    Setting("oidc_client_secret", ("CONVERGER_OIDC_CLIENT_SECRET",), str, "",
            "The client's secret (sent to the token endpoint with HTTP Basic)."),
    Setting("oidc_groups_claim", ("CONVERGER_OIDC_GROUPS_CLAIM",), str, "groups",
            "The ID token claim listing the user's groups (or roles)."),
    Setting("oidc_scopes", ("CONVERGER_OIDC_SCOPES",), str, "openid email profile groups",
            "Scopes asked for at sign-in."),
    Setting("oidc_role_map", ("CONVERGER_OIDC_ROLE_MAP",), str, "",
            'JSON: group → role, or group → `{"role": …, "tenants": [ids]}` (a tenant scope); '
            "the first group of the map the user has decides; a user with none is refused."),
    Setting("local_passwords", ("CONVERGER_LOCAL_PASSWORDS",), bool, True,
            "Whether admins may sign in with a local password; `false` leaves single sign-on "
            "only (the management API's tokens are unaffected)."),
    # -- HTTPS (gateway/tls.py, docs/deploy.md) ------------------------------------------------
    Setting("domains", ("CONVERGER_DOMAINS",), str, "",
            "Comma-separated domain names. When set, `serve` obtains a certificate for them over "
            "ACME (HTTP-01 on `http_port`), renews it, and serves HTTPS on `https_port`; "
            "`http_port` answers the challenges and redirects everything else to HTTPS."),
    Setting("acme_directory", ("CONVERGER_ACME_DIRECTORY",), str, LETS_ENCRYPT,
            "ACME directory URL (Let's Encrypt by default; its staging, or an internal CA)."),
    Setting("acme_email", ("CONVERGER_ACME_EMAIL",), str, "",
            "Contact address given to the ACME server (expiry notices); optional."),
    Setting("acme_ca_bundle", ("CONVERGER_ACME_CA_BUNDLE",), str, "",
            "PEM file of CA certificates trusted for the ACME server's own HTTPS (an internal "
            "CA); default: the system's."),
    Setting("acme_renew_days", ("CONVERGER_ACME_RENEW_DAYS",), int, 30,
            "Renew when fewer days than this are left (or a third of the certificate's lifetime, "
            "if that is shorter)."),
    Setting("http_port", ("CONVERGER_HTTP_PORT",), int, 80,
            "With HTTPS on: the plain-HTTP port (ACME HTTP-01 challenges, redirects to HTTPS); "
            "0 turns it off (only with `tls_cert`)."),
    Setting("https_port", ("CONVERGER_HTTPS_PORT",), int, 443,
            "With HTTPS on: the HTTPS port (the API, pages and WebSockets); `port` is then unused."),
    Setting("tls_cert", ("CONVERGER_TLS_CERT",), str, "",
            "Serve HTTPS with this certificate chain (PEM) instead of ACME; reloaded when it "
            "changes. Needs `tls_key`."),
    Setting("tls_key", ("CONVERGER_TLS_KEY",), str, "",
            "The private key (PEM) of `tls_cert`."),
    Setting("tls_check_interval", ("CONVERGER_TLS_CHECK_INTERVAL",), int, 60,
            "Seconds between certificate checks: changed `tls_cert`/`tls_key` files are "
            "reloaded, a due ACME renewal is started."),
)


class Settings(msgspec.Struct, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 4000
    data_dir: str = "./data"
    db: str = ""
    database_url: str = ""
    secret_key: str = ""
    admin_token: str = ""
    synchronous: str = "NORMAL"
    db_max_pages: int = 0
    public_url: str = ""
    pipeline: str = "queue"
    delivery_concurrency: int = 20
    pipeline_url: str = ""
    pipeline_consume: bool = True
    webhook_timeout: float = 10.0
    delivery_lease: float = 0.0
    lease_rescue_interval: float = 30.0
    backoff_scale: float = 1.0
    clock_file: str = ""
    max_body_bytes: int = 1_048_576
    max_upload_bytes: int = 10_485_760
    activity_list_cap: int = 10_000
    ws_idle_timeout: int = 60
    ws_max_frame_bytes: int = 1_048_576
    ws_send_queue: int = 1000
    gc_full_every: float = 600.0
    workers: str = "auto"
    worker_stuck_after: float = 20.0
    worker_header: bool = False
    log_level: str = "INFO"
    access_log: bool = False
    rate_limit_tokens: int = 10
    rate_limit_activities: int = 6000
    rate_limit_inbound: int = 6000
    rate_limit_deliveries: int = 0
    cors_origins: str = "http://127.0.0.1:5500,http://localhost:5500"
    admin_ip_whitelist: str = "127.0.0.1,::1"
    trusted_proxies: str = ""
    smtp_port: int = 0
    smtp_host: str = ""
    smtp_max_bytes: int = 26_214_400
    prometheus_port: int = 0
    deprecated_routes: str = ""
    otel_endpoint: str = ""
    events_url: str = ""
    events_poll: float = 2.0
    replica_url: str = ""
    replica_endpoint: str = ""
    replica_region: str = ""
    replica_access_key_id: str = ""
    replica_secret_access_key: str = ""
    replica_force_path_style: bool = False
    replica_sync_interval: str = "1s"
    wal_truncate_pages: int = 16384
    health_interval: int = 300
    expiry_interval: int = 3600
    conversation_idle: int = 86400
    prune_interval: int = 3600
    analytics_interval: int = 10
    health_retention_days: int = 7
    delivery_retention_days: int = 0
    max_connections: int = 0
    max_connections_per_ip: int = 256
    connection_reserve: int = 64
    header_timeout: float = 10.0
    body_timeout: float = 120.0
    max_sockets_per_token: int = 100
    max_activity_bytes: int = 65_536
    list_max_bytes: int = 8_388_608
    tenant_upload_quota: int = 1_073_741_824
    rate_limit_conversations: int = 600
    outbound_allow: str = ""
    outbound_hosts: str = ""
    login_fail_per_ip: int = 20
    login_fail_total: int = 1000
    login_hash_threads: int = 2
    login_hash_queue: int = 32
    session_lifetime: int = 43_200
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_groups_claim: str = "groups"
    oidc_scopes: str = "openid email profile groups"
    oidc_role_map: str = ""
    local_passwords: bool = True
    domains: str = ""
    acme_directory: str = LETS_ENCRYPT
    acme_email: str = ""
    acme_ca_bundle: str = ""
    acme_renew_days: int = 30
    http_port: int = 80
    https_port: int = 443
    tls_cert: str = ""
    tls_key: str = ""
    tls_check_interval: int = 60

    @property
    def worker_count(self) -> int:
        """``workers`` as a number: ``auto`` is the usable cores, capped at ``MAX_AUTO_WORKERS``."""
        if self.workers.strip().lower() == "auto":
            try:
                cores = len(os.sched_getaffinity(0))
            except AttributeError:  # not Linux
                cores = os.cpu_count() or 1
            return max(1, min(cores, MAX_AUTO_WORKERS))
        return int(self.workers)

    @property
    def db_path(self) -> Path:
        return Path(self.db) if self.db else Path(self.data_dir) / "converger.db"

    @property
    def postgresql(self) -> bool:
        """The store is PostgreSQL (``database_url`` set), not the SQLite file."""
        return bool(self.database_url)

    @property
    def domain_list(self) -> list[str]:
        return [d.strip().lower().rstrip(".") for d in self.domains.split(",") if d.strip()]

    @property
    def tls(self) -> str:
        """``acme`` (domains), ``files`` (tls_cert/tls_key) or ``""`` (plain HTTP)."""
        return "acme" if self.domains.strip() else "files" if self.tls_cert else ""


#: One SQLite file takes one writer at a time: past this many processes they mostly wait for it.
MAX_AUTO_WORKERS = 8


# CONVERGER_EVENTS_URL's schemes and the broker each one names (gateway/events.py).
EVENT_SCHEMES = {"nats": "nats", "tls": "nats", "amqp": "amqp", "amqps": "amqp"}


def events_url_problem(url: str) -> str | None:
    """What is wrong with ``url`` (None when it is usable): for ConfigError."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 — raises on a bad port
    except ValueError as exc:
        return f"is malformed ({exc})"
    if parts.scheme == "kafka":
        return "kafka:// is not supported yet: use nats:// (JetStream) or amqp:// (RabbitMQ)"
    if parts.scheme not in EVENT_SCHEMES:
        return "must be nats://host:port (JetStream) or amqp://user:password@host:port/vhost"
    if not parts.hostname:
        return "names no host"
    return None


# CONVERGER_PIPELINE's broker backends and the URL schemes each accepts (gateway/workers/broker.py).
BROKER_PIPELINES = {"rabbitmq": ("amqp", "amqps"), "nats": ("nats", "tls")}
PIPELINES = ("queue", "inline", *BROKER_PIPELINES)


def pipeline_problem(pipeline: str, url: str) -> str | None:
    """What is wrong with CONVERGER_PIPELINE / CONVERGER_PIPELINE_URL (None: usable)."""
    if pipeline not in PIPELINES:
        return (f"CONVERGER_PIPELINE must be one of {', '.join(PIPELINES)} (got {pipeline!r})")
    schemes = BROKER_PIPELINES.get(pipeline)
    if schemes is None:
        return None
    if not url:
        return (f"CONVERGER_PIPELINE={pipeline} needs CONVERGER_PIPELINE_URL "
                f"({schemes[0]}://host:port)")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 — raises on a bad port
    except ValueError as exc:
        return f"CONVERGER_PIPELINE_URL is malformed ({exc})"
    if parts.scheme not in schemes:
        return (f"CONVERGER_PIPELINE_URL must start with "
                f"{' or '.join(s + '://' for s in schemes)} for CONVERGER_PIPELINE={pipeline}")
    if not parts.hostname:
        return "CONVERGER_PIPELINE_URL names no host"
    return None


class ConfigError(ValueError):
    """A setting has a value that cannot be used."""


def _convert(setting: Setting, raw: str) -> Any:
    if setting.type is bool:
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if setting.type is int:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{setting.env[0]} must be an integer, got {raw!r}") from None
    if setting.type is float:
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{setting.env[0]} must be a number, got {raw!r}") from None
    return raw


def load(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from the environment, then ``overrides`` (command-line flags) on top."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        for var in setting.env:
            if env.get(var):
                values[setting.name] = _convert(setting, env[var])
                break
    values.update({k: v for k, v in overrides.items() if v is not None})
    settings = Settings(**values)
    if settings.synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
        raise ConfigError("CONVERGER_SYNCHRONOUS must be NORMAL, FULL or EXTRA")
    if settings.database_url:
        from store.dialect import is_postgresql

        if not is_postgresql(settings.database_url):
            raise ConfigError("CONVERGER_DATABASE_URL must be a PostgreSQL URL "
                              "(postgresql://user:password@host:5432/dbname)")
        if settings.replica_url:
            raise ConfigError("CONVERGER_REPLICA_URL (Litestream) replicates the SQLite file; with "
                              "CONVERGER_DATABASE_URL use PostgreSQL's own replication "
                              "(docs/scaling.md)")
    if settings.events_url:
        problem = events_url_problem(settings.events_url)
        if problem:
            raise ConfigError(f"CONVERGER_EVENTS_URL {problem}")
    if not settings.events_poll > 0:
        raise ConfigError("CONVERGER_EVENTS_POLL must be a number of seconds > 0")
    problem = pipeline_problem(settings.pipeline, settings.pipeline_url)
    if problem:
        raise ConfigError(problem)
    if settings.db_max_pages < 0:
        raise ConfigError("CONVERGER_DB_MAX_PAGES must be 0 (no cap) or a page count")
    if settings.delivery_retention_days < 0 or settings.health_retention_days < 1:
        raise ConfigError("CONVERGER_DELIVERY_RETENTION_DAYS must be 0 (keep) or more, and "
                          "CONVERGER_HEALTH_RETENTION_DAYS at least 1")
    if settings.workers.strip().lower() != "auto":
        try:
            if not 1 <= int(settings.workers) <= 64:
                raise ValueError
        except ValueError:
            raise ConfigError("CONVERGER_WORKERS must be 'auto' or a number from 1 to 64") from None
    if settings.delivery_concurrency < 1:
        raise ConfigError("CONVERGER_DELIVERY_CONCURRENCY must be at least 1")
    if settings.delivery_lease < 0 or settings.lease_rescue_interval <= 0:
        raise ConfigError("CONVERGER_DELIVERY_LEASE must be 0 (automatic) or more, and "
                          "CONVERGER_LEASE_RESCUE_INTERVAL more than 0")
    if settings.webhook_timeout <= 0 or settings.backoff_scale < 0:
        raise ConfigError("CONVERGER_WEBHOOK_TIMEOUT must be > 0 and CONVERGER_BACKOFF_SCALE >= 0")
    if min(settings.max_connections, settings.max_connections_per_ip, settings.connection_reserve,
           settings.max_sockets_per_token) < 0:
        raise ConfigError("connection and socket caps must be 0 (no cap) or more")
    if settings.header_timeout <= 0 or settings.body_timeout <= 0:
        raise ConfigError("CONVERGER_HEADER_TIMEOUT and CONVERGER_BODY_TIMEOUT must be > 0")
    from . import outbound

    try:
        outbound.parse_hosts(settings.outbound_hosts)
    except ValueError as exc:
        raise ConfigError(f"outbound_hosts: {exc}") from None
    from . import versioning

    try:
        versioning.parse(settings.deprecated_routes)
    except ValueError as exc:
        raise ConfigError(f"CONVERGER_DEPRECATED_ROUTES: {exc}") from None
    _check_tls(settings)
    _check_sso(settings)
    for name in ("admin_ip_whitelist", "trusted_proxies", "outbound_allow"):
        try:
            from ipaddress import ip_network

            for item in getattr(settings, name).split(","):
                if item.strip():
                    ip_network(item.strip(), strict=False)
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}") from None
    return settings


def _check_sso(settings: Settings) -> None:
    if not settings.oidc_issuer:
        if not settings.local_passwords:
            raise ConfigError("CONVERGER_LOCAL_PASSWORDS=false needs single sign-on "
                              "(CONVERGER_OIDC_ISSUER): nobody could sign in to the admin panel")
        return
    if not settings.oidc_client_id or not settings.oidc_client_secret:
        raise ConfigError("CONVERGER_OIDC_ISSUER needs CONVERGER_OIDC_CLIENT_ID and "
                          "CONVERGER_OIDC_CLIENT_SECRET")
    from .sso import parse_role_map

    try:
        grants = parse_role_map(settings.oidc_role_map)
    except ValueError as exc:
        raise ConfigError(f"CONVERGER_OIDC_ROLE_MAP: {exc}") from None
    if not grants:
        raise ConfigError("CONVERGER_OIDC_ISSUER needs CONVERGER_OIDC_ROLE_MAP: without it no "
                          "group maps to a role and every sign-in is refused")


_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")


def _check_tls(settings: Settings) -> None:
    """HTTPS settings that cannot work are refused here, in one line each; the public URL
    defaults to ``https://<first domain>``."""
    for domain in settings.domain_list:
        if not _DOMAIN.match(domain):
            raise ConfigError(f"CONVERGER_DOMAINS: {domain!r} is not a domain name (an ACME "
                              "HTTP-01 certificate needs a DNS name, no wildcard, no IP address)")
    if settings.domains.strip() and settings.tls_cert:
        raise ConfigError("CONVERGER_DOMAINS (ACME) and CONVERGER_TLS_CERT (own files) exclude "
                          "each other: choose one")
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise ConfigError("CONVERGER_TLS_CERT and CONVERGER_TLS_KEY go together")
    for name in ("http_port", "https_port"):
        if not 0 <= getattr(settings, name) <= 65535:
            raise ConfigError(f"CONVERGER_{name.upper()} must be a port number (0-65535)")
    if settings.tls:
        if settings.https_port == 0 or settings.https_port == settings.http_port:
            raise ConfigError("CONVERGER_HTTPS_PORT must be set and differ from CONVERGER_HTTP_PORT")
        if settings.tls == "acme" and settings.http_port == 0:
            raise ConfigError("ACME (CONVERGER_DOMAINS) answers its HTTP-01 challenges on "
                              "CONVERGER_HTTP_PORT: it cannot be 0")
        if settings.tls_check_interval < 1 or settings.acme_renew_days < 1:
            raise ConfigError("CONVERGER_TLS_CHECK_INTERVAL and CONVERGER_ACME_RENEW_DAYS must be "
                              "at least 1")
    if settings.tls == "acme" and not settings.public_url:
        port = "" if settings.https_port == 443 else f":{settings.https_port}"
        settings.public_url = f"https://{settings.domain_list[0]}{port}"


def markdown() -> str:
    """The settings table as Markdown (docs/configuration.md)."""
    lines = [
        "# Configuration",
        "",
        "Generated from `gateway/config.py` (`SETTINGS`); "
        "`tests/unit/gateway/test_config.py` checks",
        "that this file is current. Regenerate with `converger settings --markdown > docs/configuration.md`.",
        "",
        "| setting | environment | default | meaning |",
        "|---|---|---|---|",
    ]
    for s in SETTINGS:
        env = ", ".join(f"`{e}`" for e in s.env)
        default = f"`{s.default}`" if s.default not in ("", None) else "—"
        lines.append(f"| {s.name} | {env} | {default} | {s.help} |")
    return "\n".join(lines) + "\n"
