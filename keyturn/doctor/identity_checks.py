"""Doctor's provider identity checks: is each credential keyturn acts with still valid?

Each family is checked only where its identity is configured through the
environment, with one read-only call: AWS STS GetCallerIdentity, Vault token
lookup-self, GitHub `GET /user`, and a login to the PostgreSQL and MySQL admin
connections. A check says who the identity is, never its secret; the drivers'
messages pass through Context.scrub before they are shown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from keyturn.doctor.base import Context, Finding, failed, ok, skipped


def _aws(ctx: Context) -> Finding:
    import boto3
    import botocore.exceptions

    env = ctx.environ
    if not any(env.get(v) for v in ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_ROLE_ARN")):
        return skipped("aws identity", "no AWS credentials in the environment")
    try:
        who = boto3.session.Session().client("sts").get_caller_identity()
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        return failed("aws identity", f"STS GetCallerIdentity refused: {ctx.scrub(str(exc))}",
                      "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) to an "
                      "active key of keyturn's IAM identity")
    return ok("aws identity", f"{who['Arn']}")


def _vault(ctx: Context) -> Finding:
    import hvac
    import hvac.exceptions
    import requests

    addr, token = ctx.environ.get("VAULT_ADDR"), ctx.environ.get("VAULT_TOKEN")
    if not addr or not token:
        return skipped("vault identity", "VAULT_ADDR and VAULT_TOKEN are not both set")
    client = hvac.Client(url=addr, token=token, namespace=ctx.environ.get("VAULT_NAMESPACE"),
                         timeout=5)
    try:
        data = client.auth.token.lookup_self()["data"]
    except (hvac.exceptions.VaultError, requests.RequestException) as exc:
        reason = "Vault refused VAULT_TOKEN" if isinstance(exc, hvac.exceptions.Forbidden) \
            else f"cannot look up VAULT_TOKEN at {addr}: {type(exc).__name__}"
        return failed("vault identity", ctx.scrub(reason),
                      "set VAULT_TOKEN to a valid token (`bao login` / `vault login`, or a "
                      "token from your Vault admin) and check VAULT_ADDR")
    name = data.get("display_name") or "token"
    return ok("vault identity", f"{name} at {addr}, policies {', '.join(data.get('policies', []))}")


async def github(ctx: Context) -> Finding:
    from keyturn.providers.github_common import DEFAULT_API_URL, ENV_API_URL, ENV_TOKEN

    token = ctx.environ.get(ENV_TOKEN)
    if not token:
        return skipped("github identity", f"{ENV_TOKEN} is not set")
    base = (ctx.environ.get(ENV_API_URL) or DEFAULT_API_URL).rstrip("/")
    async with httpx.AsyncClient(timeout=5) as http:
        answer = await http.get(f"{base}/user", headers={
            "Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"})
    if answer.status_code != 200:
        return failed("github identity", f"GET {base}/user answered {answer.status_code}",
                      f"set {ENV_TOKEN} to a valid token of keyturn's GitHub identity")
    return ok("github identity", f"{answer.json().get('login', '?')} at {base}")


def _login(ctx: Context, check: str, variable: str, fix: str,
           who: Callable[[str], str], errors: tuple[type[Exception], ...]) -> Finding:
    """Log in with the connection string in `variable`; `who` returns the user logged in as."""
    dsn = ctx.environ.get(variable)
    if not dsn:
        return skipped(check, f"{variable} is not set")
    try:
        user = who(dsn)
    except errors as exc:
        return failed(check, f"login refused: {ctx.scrub(str(exc).strip())}", fix)
    return ok(check, f"logged in as {user}")


def _postgres_user(dsn: str) -> str:
    import psycopg

    with psycopg.connect(dsn, connect_timeout=5) as conn:
        row = conn.execute("SELECT current_user").fetchone()
    return str(row[0]) if row else "?"


def _mysql_user(dsn: str) -> str:
    import pymysql

    parts = urlsplit(dsn)
    params: dict[str, Any] = {"host": parts.hostname or "127.0.0.1", "port": parts.port or 3306,
                              "user": unquote(parts.username or ""),
                              "password": unquote(parts.password or ""), "connect_timeout": 5}
    with pymysql.connect(**params) as conn, conn.cursor() as cur:
        cur.execute("SELECT CURRENT_USER()")
        row = cur.fetchone()
    return str(row[0]) if row else "?"


def _postgres(ctx: Context) -> Finding:
    import psycopg

    from keyturn.providers.postgres_password import ADMIN_DSN_ENV

    return _login(ctx, "postgres identity", ADMIN_DSN_ENV,
                  f"set {ADMIN_DSN_ENV} to a libpq connection string that logs in",
                  _postgres_user, (psycopg.Error,))


def _mysql(ctx: Context) -> Finding:
    import pymysql

    from keyturn.providers.mysql_password import ADMIN_DSN_ENV

    return _login(ctx, "mysql identity", ADMIN_DSN_ENV,
                  f"set {ADMIN_DSN_ENV} to mysql://USER:PASSWORD@HOST:PORT of an admin that "
                  "logs in", _mysql_user, (pymysql.Error, ValueError))


async def aws(ctx: Context) -> Finding:
    return await asyncio.to_thread(_aws, ctx)


async def vault(ctx: Context) -> Finding:
    return await asyncio.to_thread(_vault, ctx)


async def postgres(ctx: Context) -> Finding:
    return await asyncio.to_thread(_postgres, ctx)


async def mysql(ctx: Context) -> Finding:
    return await asyncio.to_thread(_mysql, ctx)
