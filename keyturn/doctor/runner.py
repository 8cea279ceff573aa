"""Every doctor check, run at once, each within its own timeout.

The checks run concurrently; one that has not answered within `timeout` seconds
is reported failed with its `slow_fix` (a server that accepts connections and
never answers must not hang doctor). A check that raises is reported failed
with the error's type and scrubbed message, never as a crash, so the table is
always whole.
"""

from __future__ import annotations

import asyncio

from keyturn.config import ConfigError
from keyturn.doctor import audit_checks, file_checks, identity_checks, temporal_checks
from keyturn.doctor.base import Check, Context, Finding, failed

DEFAULT_TIMEOUT = 10.0
_TEMPORAL_FIX = ("check KEYTURN_TEMPORAL_ADDRESS and that the server answers (`temporal "
                 "operator cluster health --address ADDRESS`)")

CHECKS = (
    Check("temporal", temporal_checks.temporal, _TEMPORAL_FIX),
    Check("search attributes", temporal_checks.search_attributes, _TEMPORAL_FIX),
    Check("codec key", temporal_checks.codec_key, _TEMPORAL_FIX),
    Check("workers", temporal_checks.workers, _TEMPORAL_FIX),
    Check("audit log", audit_checks.audit_log,
          "check that the file system or the database in KEYTURN_AUDIT_DSN answers; for a "
          "long log, raise --timeout"),
    Check("signing key", audit_checks.signing_key, "check the file system holding the key"),
    Check("aws identity", identity_checks.aws, "check AWS_ENDPOINT_URL and network access to STS"),
    Check("vault identity", identity_checks.vault, "check VAULT_ADDR and that Vault answers"),
    Check("github identity", identity_checks.github,
          "check KEYTURN_GITHUB_API_URL and that GitHub answers"),
    Check("postgres identity", identity_checks.postgres,
          "check the host and port in KEYTURN_POSTGRES_ADMIN_DSN"),
    Check("mysql identity", identity_checks.mysql,
          "check the host and port in KEYTURN_MYSQL_ADMIN_DSN"),
    Check("api tokens", file_checks.token_file, "check the file system holding the token file"),
    Check("policy", file_checks.policy, "check the file system holding the policy file"),
)


async def _one(ctx: Context, check: Check, timeout: float) -> Finding:
    try:
        found = await asyncio.wait_for(check.run(ctx), timeout)
    except TimeoutError:
        return failed(check.name, f"no answer within {timeout:g} s", check.slow_fix)
    except ConfigError as exc:
        return failed(check.name, ctx.scrub(str(exc)), check.slow_fix)
    except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
        return failed(check.name, ctx.scrub(f"{type(exc).__name__}: {exc}"), check.slow_fix)
    return Finding(found.check, found.status, ctx.scrub(found.detail), ctx.scrub(found.fix))


async def run_checks(ctx: Context, timeout: float = DEFAULT_TIMEOUT,
                     checks: tuple[Check, ...] = CHECKS) -> list[Finding]:
    """Every check's finding, in the order of `checks`."""
    return list(await asyncio.gather(*(_one(ctx, check, timeout) for check in checks)))
