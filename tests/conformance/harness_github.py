"""Conformance harnesses for the GitHub providers, and the shared GitHub fake fixture.

`github_fake` is one session-wide `fakes.github.GitHubFake` (loopback, started
once); other GitHub-facing tests (stores, Actions secrets) reuse it and add
their routes with their own `install(fake)`. Every subject gets fresh users and
repositories, so tests sharing the fake do not see each other's state.

The harnesses answer `works` from the fake's own state (what GitHub would
know), never through the provider: a deploy key is listed with the public key
its private key derives, a webhook signs with the secret, a token authenticates.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager

import pytest
from conformance.harness import FaultKind, Subject
from cryptography.hazmat.primitives import serialization
from fakes.github import GitHubFake

from keyturn.fingerprint import fingerprint
from keyturn.providers.github_deploy_key import (
    PRIVATE_KEY,
    PUBLIC_KEY,
    GitHubDeployKeyProvider,
    key_body,
    new_key_pair,
)
from keyturn.providers.github_pat import GitHubPatProvider
from keyturn.providers.github_webhook_secret import FIELD, GitHubWebhookSecretProvider
from keyturn.secret import Secret


@pytest.fixture(scope="session")
def github_fake() -> Iterator[GitHubFake]:
    """A running GitHubFake; use `.url` as PyGithub's base_url."""
    fake = GitHubFake().start()
    try:
        yield fake
    finally:
        fake.stop()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class _GitHubHarness:
    """What the three harnesses share: an admin user on the fake and fault injection."""

    quota: int | None = None

    def __init__(self, fake: GitHubFake) -> None:
        self.fake = fake
        self.admin = unique("kt-admin")
        self.admin_token = fake.add_user(self.admin)

    def fault(self, kind: FaultKind) -> AbstractContextManager[None]:
        return self.fake.failing(403 if kind == "permanent" else 503)

    def fill_to_quota(self, subject: Subject, active: bool) -> list[str]:
        raise NotImplementedError(f"{self.provider_name} has no per-target quota")

    def supply(self, subject: Subject) -> Secret:
        raise NotImplementedError(f"{self.provider_name} is not supplied")

    def new_repo(self) -> str:
        repo = f"{self.admin}/{unique('app')}"
        self.fake.add_repo(repo, self.admin)
        return repo


class DeployKeyHarness(_GitHubHarness):
    provider_name = "github.deploy_key"

    def provider(self) -> GitHubDeployKeyProvider:
        return GitHubDeployKeyProvider(
            base_url=self.fake.url, token=self.admin_token, attempts=2, delay=0
        )

    def new_subject(self) -> Subject:
        repo = self.new_repo()
        secret = new_key_pair(os.urandom(32))
        key = self.fake.add_deploy_key(repo, "deploy", secret[PUBLIC_KEY], read_only=True)
        return Subject(target={"repo": repo}, initial=secret, initial_id=str(key["id"]))

    def works(self, subject: Subject, secret: Secret) -> bool:
        try:
            private = serialization.load_ssh_private_key(secret[PRIVATE_KEY].encode(), None)
        except (KeyError, ValueError):
            return False
        derived = private.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        ).decode()
        listed = {key_body(k["key"]) for k in self.fake.deploy_keys(subject.target["repo"])}
        return key_body(derived) in listed

    def broken(self, subject: Subject, secret: Secret) -> Secret:
        return new_key_pair(os.urandom(32))  # a well-formed key GitHub has never seen


class WebhookSecretHarness(_GitHubHarness):
    provider_name = "github.webhook_secret"

    def provider(self) -> GitHubWebhookSecretProvider:
        return GitHubWebhookSecretProvider(
            base_url=self.fake.url, token=self.admin_token, attempts=2, delay=0
        )

    def new_subject(self) -> Subject:
        repo = self.new_repo()
        secret = {FIELD: uuid.uuid4().hex}
        hook = self.fake.add_hook(repo, "https://receiver.example/github", secret=secret[FIELD])
        return Subject(
            target={"repo": repo, "hook_id": hook["id"]},
            initial=secret,
            initial_id=fingerprint(secret),
        )

    def works(self, subject: Subject, secret: Secret) -> bool:
        current = self.fake.hook_secret(subject.target["repo"], subject.target["hook_id"])
        return bool(secret.get(FIELD)) and current == secret[FIELD]

    def broken(self, subject: Subject, secret: Secret) -> Secret:
        return {FIELD: uuid.uuid4().hex}


class PatHarness(_GitHubHarness):
    provider_name = "github.pat"
    scopes = ("repo", "read:org")

    def provider(self) -> GitHubPatProvider:
        return GitHubPatProvider(
            base_url=self.fake.url, token=self.admin_token, attempts=2, delay=0
        )

    def new_subject(self) -> Subject:
        owner = unique("kt-dev")
        self.fake.add_user(owner)
        secret = {"token": self.fake.mint_token(owner, scopes=list(self.scopes))}
        return Subject(
            target={"owner": owner, "scopes": ["repo"]},
            initial=secret,
            initial_id=fingerprint({"token": secret["token"]}),
        )

    def works(self, subject: Subject, secret: Secret) -> bool:
        token = self.fake.tokens.get(secret.get("token", ""))
        return bool(token) and not token.revoked and token.login == subject.target["owner"]

    def broken(self, subject: Subject, secret: Secret) -> Secret:
        return {"token": "ghp_" + uuid.uuid4().hex[:36]}  # well-formed, unknown to GitHub

    def supply(self, subject: Subject) -> Secret:
        return {"token": self.fake.mint_token(subject.target["owner"], scopes=list(self.scopes))}


@pytest.fixture(scope="session")
def harness_github_deploy_key(github_fake: GitHubFake) -> DeployKeyHarness:
    return DeployKeyHarness(github_fake)


@pytest.fixture(scope="session")
def harness_github_webhook_secret(github_fake: GitHubFake) -> WebhookSecretHarness:
    return WebhookSecretHarness(github_fake)


@pytest.fixture(scope="session")
def harness_github_pat(github_fake: GitHubFake) -> PatHarness:
    return PatHarness(github_fake)
