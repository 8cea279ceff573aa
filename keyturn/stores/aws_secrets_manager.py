"""AWS Secrets Manager: the `aws_secrets_manager` store, through boto3.

A path is a secret's name; its value is a JSON object of fields, written
exactly as given (the activities merge a new credential into the current
object, so every other key stays as the applications read it), or a plain
string: a SecretString that is not a JSON object reads as the one field
`keyturn.stores.fields.TEXT` and is written back the same way. A write with
`cas` checks that AWSCURRENT is still that version; a concurrent writer that
took the version number makes PutSecretValue fail. Either raises StoreConflict.

Writing follows AWS's own rotation: the new value is put as a version staged
AWSPENDING, then AWSCURRENT is moved to it (AWS puts AWSPREVIOUS on the version
it left, for rollback) and the AWSPENDING label is removed again. Stages are
always named explicitly (moto does not move the default version otherwise).

The Store protocol numbers versions 1, 2, 3...; Secrets Manager names them by
VersionId. keyturn writes version N with the VersionId (ClientRequestToken)
`keyturn-version-` + N in 16 digits, so the number travels with the version.
A version written by someone else (the console, a rotation Lambda) has no
number: while it is AWSCURRENT it reads as the next free number, and the next
write adopts it under that number before writing its own, so the value it
replaced stays readable by version.

Per-version metadata (fingerprint, run, credential id, replaces_version)
lives in the secret's tags, which AWS keeps per secret: tag `keyturn:v<N>`
(and `keyturn:v<N>:<i>` continuations of 256 characters each) holds the
base64url of the compact JSON of version N's metadata, well-known keys
shortened to one letter. An adopted version's entry also records its
VersionId. Entries of versions more than KEPT_VERSION_METADATA behind the
newest are pruned on write, staying inside AWS's limit of 50 tags per secret;
an older version read after pruning comes back with empty metadata.

Configuration holds no credentials: they, and the region and endpoint unless
configured, come from the standard AWS environment (AWS_* variables, shared
config files, instance roles).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import boto3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    NoRegionError,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from keyturn import awserrors
from keyturn.awserrors import error_code, error_detail
from keyturn.fingerprint import canonical_json
from keyturn.randomness import KmsRandom, RandomSource
from keyturn.secret import redact
from keyturn.stores.base import StoreDefaults, StoredVersion
from keyturn.stores.errors import (
    ERRORS,
    PermanentStoreError,
    StoreAccessDenied,
    StoreConfigError,
    StoreConflict,
    StoreError,
    StoreInvalidRequest,
    StoreNotFound,
    TransientStoreError,
)
from keyturn.stores.fields import TEXT, Data, is_text

CURRENT, PENDING = "AWSCURRENT", "AWSPENDING"
TOKEN_PREFIX = "keyturn-version-"
TOKEN = re.compile(r"^keyturn-version-(\d{16})$")
TAG_PREFIX = "keyturn:v"
TAG = re.compile(r"^keyturn:v(\d+)(?::(\d+))?$")
TAG_VALUE_CHARS = 256  # AWS's limit on one tag value
MAX_TAGS_PER_VERSION = 3
KEPT_VERSION_METADATA = 8
ADOPTED = "@"  # metadata entry key: the VersionId of a version keyturn did not write
SHORT = {
    "fingerprint": "f",
    "credential_id": "i",
    "credential": "c",
    "keyturn_run": "r",
    "replaces_version": "p",
    "generated_by": "g",
}
LONG = {short: key for key, short in SHORT.items()}

# The one table from Secrets Manager error codes to store errors. Codes not
# listed are classified by HTTP status (403 denied, 5xx transient, else
# permanent); connection failures are transient.
ERROR_CODES: dict[str, type[StoreError]] = {
    "AccessDeniedException": StoreAccessDenied,
    "UnrecognizedClientException": StoreAccessDenied,
    "InvalidSignatureException": StoreAccessDenied,
    "IncompleteSignature": StoreAccessDenied,
    "ExpiredTokenException": StoreAccessDenied,
    "ResourceNotFoundException": StoreNotFound,
    "InvalidParameterException": StoreInvalidRequest,
    "InvalidRequestException": StoreInvalidRequest,
    "LimitExceededException": StoreInvalidRequest,
    "MalformedPolicyDocumentException": StoreInvalidRequest,
    "PreconditionNotMetException": StoreInvalidRequest,
    "ResourceExistsException": StoreConflict,  # a concurrent write took the version number
    "ThrottlingException": TransientStoreError,
    "InternalServiceError": TransientStoreError,
    "InternalFailure": TransientStoreError,
    "ServiceUnavailable": TransientStoreError,
    "RequestTimeout": TransientStoreError,
}


class AwsSecretsManagerConfig(BaseModel):
    """An `aws_secrets_manager` store as configured in a runbook's `stores:` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    region: str | None = Field(default=None, pattern=r"^[a-z0-9-]+$")
    endpoint_url: str | None = Field(default=None, min_length=1)
    kms_key_id: str | None = Field(default=None, min_length=1)
    """The KMS key that encrypts secrets this store creates (default: aws/secretsmanager)."""


def classify(exc: Exception) -> type[StoreError]:
    """The store error class for a boto3/botocore exception (keyturn.awserrors)."""
    if isinstance(exc, NoCredentialsError | NoRegionError):
        return StoreConfigError
    return awserrors.classify(exc, ERROR_CODES, ERRORS)


def version_token(number: int) -> str:
    """The VersionId keyturn gives version `number` (32 characters, as AWS requires at least)."""
    return f"{TOKEN_PREFIX}{number:016d}"


def encode_metadata(metadata: Mapping[str, str]) -> list[str]:
    """Tag values (at most MAX_TAGS_PER_VERSION) holding `metadata` in compact, tag-safe form."""
    compact = {SHORT.get(key, "_" + key): value for key, value in metadata.items()}
    text = base64.urlsafe_b64encode(canonical_json(compact)).decode().rstrip("=")
    return [text[i:i + TAG_VALUE_CHARS] for i in range(0, len(text), TAG_VALUE_CHARS)] or [""]


def decode_metadata(chunks: list[str]) -> dict[str, str]:
    """Inverse of encode_metadata; ValueError if the tags were changed outside keyturn."""
    text = "".join(chunks)
    value = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    if not (isinstance(value, dict) and all(isinstance(v, str) for v in value.values())):
        raise ValueError("not a JSON object of strings")
    return {(key[1:] if key.startswith("_") else LONG[key]): v for key, v in value.items()}


@dataclass(frozen=True)
class _SecretState:
    """What one describe + list says about a secret: its versions and keyturn's tag entries."""

    versions: dict[str, list[str]]  # VersionId -> staging labels, deprecated versions included
    entries: dict[int, dict[str, str]]  # version number -> metadata (ADOPTED included)
    tags: list[str]  # every tag key, for pruning

    def current(self) -> str | None:
        return next((vid for vid, stages in self.versions.items() if CURRENT in stages), None)

    def current_number(self) -> int:
        """The number a read of AWSCURRENT gives (0: no current version)."""
        current = self.current()
        if current is None:
            return 0
        number = self.number_of(current)
        return number if number is not None else self.next_number()

    def number_of(self, version_id: str) -> int | None:
        if (match := TOKEN.match(version_id)) is not None:
            return int(match.group(1))
        return next((n for n, e in self.entries.items() if e.get(ADOPTED) == version_id), None)

    def next_number(self) -> int:
        known = [n for n in map(self.number_of, self.versions) if n is not None]
        return max([*known, *self.entries, 0]) + 1

    def foreign_current(self) -> str | None:
        """The AWSCURRENT VersionId if no keyturn number names it yet."""
        current = self.current()
        return current if current is not None and self.number_of(current) is None else None

    def version_id(self, number: int) -> str | None:
        adopted = self.entries.get(number, {}).get(ADOPTED)
        if adopted in self.versions:
            return adopted
        if version_token(number) in self.versions:
            return version_token(number)
        if number == self.next_number():
            return self.foreign_current()  # the number a read of AWSCURRENT gave it
        return None

    def metadata(self, number: int) -> dict[str, str]:
        return {k: v for k, v in self.entries.get(number, {}).items() if k != ADOPTED}


class AwsSecretsManagerStore(StoreDefaults):
    """Secrets Manager secrets as versioned keyturn paths, with per-version metadata in tags."""

    type: ClassVar[str] = "aws_secrets_manager"

    def __init__(self, name: str, config: Mapping[str, Any]) -> None:
        self.name = name
        self.config = _parse_config(name, config)
        try:
            self._client = boto3.session.Session().client(
                "secretsmanager",
                region_name=self.config.region,
                endpoint_url=self.config.endpoint_url,
            )
        except NoRegionError as exc:
            raise StoreConfigError(
                f"aws_secrets_manager store {name!r}: no region; set `region` in its config "
                "or AWS_REGION"
            ) from exc
        self.region: str = self._client.meta.region_name

    def random_source(self) -> RandomSource:
        """KMS GenerateRandom in this store's account and region, for generated secrets."""
        kms = boto3.session.Session().client(
            "kms", region_name=self.region, endpoint_url=self.config.endpoint_url
        )
        return KmsRandom(kms, self.region)

    def read(self, path: str, version: int | None = None) -> StoredVersion | None:
        name = self._clean(path)
        state = self._state(name, "read")
        if state is None:
            return None
        if version is None:
            version_id = state.current()
            if version_id is None:
                return None
            number = state.number_of(version_id)
            if number is None:  # written outside keyturn: it gets the next number on adoption
                number = state.next_number()
        else:
            version_id, number = state.version_id(version), version
            if version_id is None:
                return None
        try:
            answer = self._client.get_secret_value(SecretId=name, VersionId=version_id)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None  # deleted meanwhile
            raise self._error(exc, "read", name) from exc
        except BotoCoreError as exc:
            raise self._error(exc, "read", name) from exc
        return StoredVersion(self._decode(name, answer), number, state.metadata(number))

    def write(
        self, path: str, secret: Data, metadata: dict[str, str], cas: int | None = None
    ) -> int:
        name = self._clean(path)
        value = self._encode(name, secret, metadata)
        state = self._state(name, "write")
        found = state.current_number() if state is not None else 0
        if cas is not None and found != cas:
            raise StoreConflict(f"write {self._where(name)}: another writer changed it after "
                                f"version {cas} was read (AWSCURRENT is version {found} now)")
        if state is None:
            state = self._create(name)
        number = state.next_number()
        tags: dict[str, str] = {}
        replaced = state.current()
        if (foreign := state.foreign_current()) is not None:
            tags.update(_entry_tags(number, encode_metadata({ADOPTED: foreign})))
            number += 1
        tags.update(_entry_tags(number, encode_metadata(metadata)))
        token = version_token(number)
        where = (f"write version {number} of", name, secret)
        put = self._call("put_secret_value", *where, ClientRequestToken=token,
                         SecretString=value, VersionStages=[PENDING])
        self._call("tag_resource", *where, Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
        if CURRENT not in put.get("VersionStages", []):  # AWS labels a first version itself
            move = {"RemoveFromVersionId": replaced} if replaced else {}
            self._call("update_secret_version_stage", *where, VersionStage=CURRENT,
                       MoveToVersionId=token, **move)
        self._call("update_secret_version_stage", *where, VersionStage=PENDING,
                   RemoveFromVersionId=token)
        pruned = [key for key in state.tags if _stale(key, number)]
        if pruned:
            self._call("untag_resource", *where, TagKeys=pruned)
        return number

    def write_problem(self, path: str) -> str | None:
        """None: Secrets Manager cannot say beforehand whether a write would be allowed."""
        self._clean(path)
        return None

    def destroy(self, path: str) -> None:
        name = self._clean(path)
        try:
            self._client.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return
            if error_code(exc) == "InvalidRequestException" and self._state(name, "destroy") is None:
                return  # already scheduled for deletion: on its way out
            raise self._error(exc, "destroy", name) from exc
        except BotoCoreError as exc:
            raise self._error(exc, "destroy", name) from exc

    # -- helpers ------------------------------------------------------------------

    def _state(self, name: str, operation: str) -> _SecretState | None:
        """The secret's versions and tag entries; None if it does not exist.

        A secret scheduled for deletion reads as absent and refuses writes.
        """
        try:
            info = self._client.describe_secret(SecretId=name)
            if info.get("DeletedDate") is not None:
                if operation == "write":
                    raise StoreInvalidRequest(
                        f"write {self._where(name)}: the secret is scheduled for deletion on "
                        f"{info['DeletedDate']:%Y-%m-%d %H:%M}; restore it (RestoreSecret) or "
                        "let the deletion finish"
                    )
                return None
            versions: dict[str, list[str]] = {}
            kwargs: dict[str, Any] = {"SecretId": name, "IncludeDeprecated": True}
            while True:
                page = self._client.list_secret_version_ids(**kwargs)
                for listed in page["Versions"]:
                    versions[listed["VersionId"]] = listed.get("VersionStages", [])
                if not page.get("NextToken"):
                    break
                kwargs["NextToken"] = page["NextToken"]
        except ClientError as exc:
            if error_code(exc) == "ResourceNotFoundException":
                return None
            raise self._error(exc, operation, name) from exc
        except BotoCoreError as exc:
            raise self._error(exc, operation, name) from exc
        tags = [tag["Key"] for tag in info.get("Tags") or []]
        return _SecretState(versions, self._entries(name, info.get("Tags") or []), tags)

    def _entries(self, name: str, tags: list[dict[str, str]]) -> dict[int, dict[str, str]]:
        chunks: dict[int, dict[int, str]] = {}
        for tag in tags:
            if (match := TAG.match(tag["Key"])) is not None:
                number, part = int(match.group(1)), int(match.group(2) or 0)
                chunks.setdefault(number, {})[part] = tag["Value"]
        entries = {}
        for number, parts in chunks.items():
            try:
                entries[number] = decode_metadata([parts[i] for i in sorted(parts)])
            except (ValueError, KeyError) as exc:
                raise PermanentStoreError(
                    f"metadata of version {number} at {self._where(name)} (tag "
                    f"{TAG_PREFIX}{number}) is not keyturn's; it was changed outside keyturn"
                ) from exc
        return entries

    def _create(self, name: str) -> _SecretState:
        kwargs: dict[str, Any] = {"Name": name, "Description": "Delivered by keyturn"}
        if self.config.kms_key_id:
            kwargs["KmsKeyId"] = self.config.kms_key_id
        try:
            self._client.create_secret(**kwargs)
        except ClientError as exc:
            if error_code(exc) != "ResourceExistsException":
                raise self._error(exc, "create", name) from exc
            state = self._state(name, "write")  # created meanwhile by someone else
            if state is not None:
                return state
            raise self._error(exc, "create", name) from exc
        except BotoCoreError as exc:
            raise self._error(exc, "create", name) from exc
        return _SecretState(versions={}, entries={}, tags=[])

    def _call(self, method: str, operation: str, name: str, secret: Data, **kwargs: Any) -> Any:
        """A request of `write`: its error is redacted, and raised without the boto3 cause."""
        try:
            return getattr(self._client, method)(SecretId=name, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            failure = self._error(exc, operation, name, secret)
        raise failure  # outside the except block: the cause may quote the value

    def _where(self, name: str) -> str:
        return f"aws_secrets_manager store {self.name!r} secret {name!r} ({self.region})"

    def _clean(self, path: str) -> str:
        cleaned = path.strip("/")
        if not cleaned:
            raise StoreInvalidRequest(
                f"aws_secrets_manager store {self.name!r}: empty path {path!r}"
            )
        return cleaned

    def _error(
        self, exc: Exception, operation: str, name: str, secret: Data | None = None
    ) -> StoreError:
        """Classify `exc`; the message names store and secret, never a secret value."""
        detail = error_detail(exc)
        detail = redact(detail, (secret or {}).values())
        return classify(exc)(f"{operation} {self._where(name)} failed: {detail}")

    def _encode(self, name: str, secret: Data, metadata: Mapping[str, str]) -> str:
        bad = [repr(k) for k, v in metadata.items()
               if not (isinstance(k, str) and isinstance(v, str))]
        if bad:
            raise StoreInvalidRequest(
                f"metadata for {self._where(name)}: keys and values must be strings "
                f"(not so for {', '.join(bad)})"
            )
        if len(encode_metadata(metadata)) > MAX_TAGS_PER_VERSION:
            raise StoreInvalidRequest(
                f"metadata for {self._where(name)} needs more than {MAX_TAGS_PER_VERSION} tags "
                f"of {TAG_VALUE_CHARS} characters"
            )
        if is_text(secret) and isinstance(secret[TEXT], str):
            return secret[TEXT]
        return json.dumps(dict(secret), ensure_ascii=False)

    def _decode(self, name: str, answer: Mapping[str, Any]) -> Data:
        """The fields of a SecretString holding a JSON object; any other string as TEXT."""
        text = answer.get("SecretString") or ""
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        return value if isinstance(value, dict) else {TEXT: text}


def _entry_tags(number: int, chunks: list[str]) -> dict[str, str]:
    return {
        (f"{TAG_PREFIX}{number}" if i == 0 else f"{TAG_PREFIX}{number}:{i}"): chunk
        for i, chunk in enumerate(chunks)
    }


def _stale(tag_key: str, newest: int) -> bool:
    """True for a keyturn metadata tag of a version KEPT_VERSION_METADATA or more behind."""
    match = TAG.match(tag_key)
    return match is not None and int(match.group(1)) <= newest - KEPT_VERSION_METADATA


def _parse_config(name: str, config: Mapping[str, Any]) -> AwsSecretsManagerConfig:
    try:
        return AwsSecretsManagerConfig.model_validate(dict(config))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors()
        )
    raise StoreConfigError(f"aws_secrets_manager store {name!r}: bad config: {problems}")
