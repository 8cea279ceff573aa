"""Doctor's file checks: the API's token file private to its owner, the policy file valid.

The token file holds only token hashes, but whoever can write it can mint a
principal, and whoever can read it learns who may do what: `keyturn api token
add` writes it 0600, and doctor says when it is not. The policy file is read as
every run start reads it (keyturn.policy.load), so a policy that would refuse
every run is found before the first one.
"""

from __future__ import annotations

import os
from pathlib import Path

from keyturn.api.auth import DEFAULT_TOKENS, TOKENS_ENV
from keyturn.doctor.base import Context, Finding, failed, ok, skipped
from keyturn.policy.load import POLICY_ENV, PolicyError, load_policy, policy_path


async def token_file(ctx: Context) -> Finding:
    path = Path(ctx.environ.get(TOKENS_ENV) or DEFAULT_TOKENS)
    if not path.exists():
        return skipped("api tokens", f"no token file at {path} (`keyturn serve` not set up here)")
    try:
        st = path.stat()
    except OSError as exc:
        return failed("api tokens", f"cannot read {path}: {exc.strerror}",
                      f"let the user who runs `keyturn serve` read {path}")
    mode = st.st_mode & 0o777
    if mode & 0o077:
        return failed("api tokens", f"{path} is open to others (mode {mode:o})",
                      f"run `chmod 600 {path}`")
    if st.st_uid != os.getuid():
        return failed("api tokens", f"{path} belongs to uid {st.st_uid}, not to this user",
                      f"run `keyturn doctor` as the user who runs `keyturn serve`, or chown "
                      f"{path} to that user")
    return ok("api tokens", f"{path}, mode {mode:o}")


async def policy(ctx: Context) -> Finding:
    path = policy_path(ctx.environ)
    if path is None:
        return ok("policy", "no policy file: the built-in default applies (runbooks name "
                  "their approvers)")
    try:
        load_policy(requester_may_approve=ctx.settings.requester_may_approve,
                    environ=ctx.environ)
    except PolicyError as exc:
        return failed("policy", str(exc),
                      f"correct {path} (see docs/policy.md), or unset {POLICY_ENV} to use the "
                      "built-in default")
    return ok("policy", f"{path} is valid")
