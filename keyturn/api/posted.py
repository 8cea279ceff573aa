"""What a runbook posted over the API (`runbook_yaml`) may not do that a runbook file on the
server may: name its own webhook destinations.

A literal `notify[].url` would let anyone with an operator token make the worker POST to
any address it can reach (127.0.0.1, the metadata service, Vault). Posted runbooks name
destinations the server's operators configured instead:

- `url_env` naming a worker variable that ends in `_WEBHOOK_URL` (so not VAULT_ADDR or
  any other variable that happens to hold an internal address), or
- `url` whose host is in the allow-list KEYTURN_API_NOTIFY_HOSTS (comma-separated).

Runbooks named from the server's runbook directory are trusted like files given to the CLI.
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import urlsplit

from keyturn.runbook.models import Runbook

WEBHOOK_ENV_SUFFIX = "_WEBHOOK_URL"


def check_posted(runbook: Runbook, notify_hosts: Collection[str]) -> None:
    """Raise RunbookError (with the position) at the first destination a posted runbook
    may not name."""
    allowed = {h.lower() for h in notify_hosts}
    for i, target in enumerate(runbook.spec.notify):
        where = ("spec", "notify", i)
        if target.url is not None:
            host = (urlsplit(str(target.url)).hostname or "").lower()
            if host not in allowed:
                hosts = ", ".join(sorted(allowed)) or "none are allowed"
                raise runbook.source.error(
                    (*where, "url"),
                    f"a runbook sent to the API may not name a webhook URL of host {host!r}: "
                    f"use url_env, or a host of KEYTURN_API_NOTIFY_HOSTS ({hosts})")
        elif target.url_env is not None and not target.url_env.endswith(WEBHOOK_ENV_SUFFIX):
            raise runbook.source.error(
                (*where, "url_env"),
                f"a runbook sent to the API may read only worker variables ending in "
                f"{WEBHOOK_ENV_SUFFIX} for webhooks (got {target.url_env})")
