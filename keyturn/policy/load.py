"""Where the policy file is and how it is read: every run start reads it afresh, so an edit
takes effect on the next run; a file that is named but missing or invalid refuses the run.

The file is `KEYTURN_POLICY`, or else `policy.yaml` next to the API's token file
(`KEYTURN_API_TOKENS`) when one is there. Without either, the built-in default
applies: runbooks name their approvers and gates, and the requester of a run
approves its gates only under `KEYTURN_REQUESTER_MAY_APPROVE=true`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from keyturn.config import REQUESTER_MAY_APPROVE_ENV, ConfigError
from keyturn.policy.model import Policy
from keyturn.runbook.loader import decode, first_error
from keyturn.runbook.source import RunbookError
from keyturn.runbook.yaml_tree import parse

POLICY_ENV = "KEYTURN_POLICY"
TOKENS_ENV = "KEYTURN_API_TOKENS"
POLICY_FILE_NAME = "policy.yaml"


class PolicyError(ConfigError):
    """The policy file is missing, unreadable or invalid; the message says where and why."""

    code = "policy_invalid"


def policy_path(environ: Mapping[str, str] | None = None,
                tokens: Path | None = None) -> Path | None:
    """The policy file in force, or None for the built-in default; `tokens` is the API's
    token file (default: `KEYTURN_API_TOKENS`)."""
    env = os.environ if environ is None else environ
    if env.get(POLICY_ENV):
        return Path(env[POLICY_ENV])
    if tokens is None and env.get(TOKENS_ENV):
        tokens = Path(env[TOKENS_ENV])
    if tokens is not None and (tokens.parent / POLICY_FILE_NAME).exists():
        return tokens.parent / POLICY_FILE_NAME
    return None


def load_policy(*, requester_may_approve: bool = False, tokens: Path | None = None,
                environ: Mapping[str, str] | None = None) -> Policy:
    """The policy in force now; `requester_may_approve` is the setting the default uses."""
    path = policy_path(environ, tokens)
    if path is None:
        return Policy.default(requesters_may_approve=requester_may_approve)
    env = os.environ if environ is None else environ
    if env.get(REQUESTER_MAY_APPROVE_ENV, "").strip():
        raise PolicyError(f"{REQUESTER_MAY_APPROVE_ENV} is set but the policy file {path} is "
                          "in force: say 'requesters_may_approve' in the policy file instead")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PolicyError(f"cannot read the policy file {path}: {exc.strerror}") from None
    try:
        return parse_policy(data, str(path))
    except RunbookError as exc:
        raise PolicyError(f"invalid policy: {exc}") from None


def parse_policy(data: bytes, filename: str) -> Policy:
    """The policy in `data`; RunbookError (file:line:col) for the first problem."""
    tree, source = parse(decode(data, filename), filename, environ={})
    if not isinstance(tree, dict):
        raise source.error((), "a policy is a mapping that starts with 'apiVersion: keyturn/v1'")
    try:
        policy = Policy.model_validate(tree)
    except ValidationError as exc:
        raise first_error(exc, source, Policy) from None
    policy._source = source
    policy._sha256 = hashlib.sha256(data).hexdigest()
    for problem in policy.problems():
        raise problem
    return policy
