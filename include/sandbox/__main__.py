"""``python -m include.sandbox``: the three API emulators (Facturama, Clientify, FacturaDirecta).

Flags override environment variables, which override the defaults::

    --host 127.0.0.1                     SANDBOX_HOST
    --facturama-port 8701                SANDBOX_FACTURAMA_PORT
    --clientify-port 8702                SANDBOX_CLIENTIFY_PORT
    --facturadirecta-port 8703           SANDBOX_FACTURADIRECTA_PORT
    --db .sandbox/sandbox.db | --memory  SANDBOX_DB (":memory:" = in memory)
    --latency-ms 0                       SANDBOX_LATENCY_MS
    --latency-profile none|realistic     SANDBOX_LATENCY_PROFILE (include/sandbox/latency.py)
    --latency-scale 1                    SANDBOX_LATENCY_SCALE (multiplies the profile's latencies)
    --webhook-time-scale 1               SANDBOX_WEBHOOK_TIME_SCALE (multiplies the webhook retry waits)
    --facturama-user / --facturama-password, --clientify-token, --facturadirecta-token
                                         SANDBOX_FACTURAMA_USER, ..._PASSWORD, SANDBOX_CLIENTIFY_TOKEN,
                                         SANDBOX_FACTURADIRECTA_TOKEN
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Sequence

from include.sandbox.config import ClientifyConfig, FacturaDirectaConfig, FacturamaConfig
from include.sandbox.latency import PROFILE_NAMES
from include.sandbox.server import DEFAULT_PORTS, Settings, serve


def _env(name: str, default: str) -> str:
    return os.environ.get(f"SANDBOX_{name}", default)


def parse_args(argv: Sequence[str] | None = None) -> Settings:
    fm, crm, fdc = FacturamaConfig(), ClientifyConfig(), FacturaDirectaConfig()
    parser = argparse.ArgumentParser(
        prog="python -m include.sandbox",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default=_env("HOST", "127.0.0.1"))
    for name, port in DEFAULT_PORTS.items():
        parser.add_argument(f"--{name}-port", type=int, default=int(_env(f"{name.upper()}_PORT", str(port))))
    storage = parser.add_mutually_exclusive_group()
    storage.add_argument(
        "--db", default=_env("DB", ".sandbox/sandbox.db"), help="SQLite file (relative to cwd)"
    )
    storage.add_argument("--memory", action="store_true", help="keep everything in memory")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=float(_env("LATENCY_MS", "0")),
        help="latency added to every API request (a baseline fault rule)",
    )
    parser.add_argument(
        "--latency-profile",
        default=_env("LATENCY_PROFILE", "none"),
        choices=PROFILE_NAMES,
        help="per-request latency of the real services (realistic: Clientify 2.4 s per 100-record "
        "page; see docs/sandbox.md)",
    )
    parser.add_argument(
        "--latency-scale",
        type=float,
        default=float(_env("LATENCY_SCALE", "1")),
        help="multiply the profile's latencies (e.g. 0.1 for a tenth of the real delays)",
    )
    parser.add_argument(
        "--webhook-time-scale",
        type=float,
        default=float(_env("WEBHOOK_TIME_SCALE", "1")),
        help="multiply the webhook retry waits of Clientify (1-16 s) and FacturaDirecta "
        "(15 s - 36 h), e.g. 0.001 for tests (docs/sandbox.md, Webhooks)",
    )
    parser.add_argument("--log-level", default=_env("LOG_LEVEL", "warning"))
    parser.add_argument("--facturama-user", default=_env("FACTURAMA_USER", fm.user))
    parser.add_argument("--facturama-password", default=_env("FACTURAMA_PASSWORD", fm.password))
    parser.add_argument("--clientify-token", default=_env("CLIENTIFY_TOKEN", crm.token))
    parser.add_argument("--facturadirecta-token", default=_env("FACTURADIRECTA_TOKEN", fdc.token))
    args = parser.parse_args(argv)
    if args.latency_scale < 0:
        parser.error("--latency-scale must not be negative")
    if args.webhook_time_scale < 0:
        parser.error("--webhook-time-scale must not be negative")
    crm.webhook_time_scale = fdc.rest_webhook_time_scale = args.webhook_time_scale
    fm.user, fm.password = args.facturama_user, args.facturama_password
    crm.token, fdc.token = args.clientify_token, args.facturadirecta_token
    db = None if args.memory or args.db == ":memory:" else args.db
    return Settings(
        host=args.host,
        ports={name: getattr(args, f"{name}_port") for name in DEFAULT_PORTS},
        db=db,
        latency_ms=args.latency_ms,
        latency_profile=args.latency_profile,
        latency_scale=args.latency_scale,
        log_level=args.log_level,
        configs={"facturama": fm, "clientify": crm, "facturadirecta": fdc},
    )


def main(argv: Sequence[str] | None = None) -> None:
    asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    main()
