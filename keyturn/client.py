"""Connecting to Temporal with keyturn's data converter."""

from __future__ import annotations

from temporalio.client import Client

from keyturn.codec import data_converter
from keyturn.config import Settings


async def connect(settings: Settings) -> Client:
    """A client for `settings.temporal_address`; says what to run when nothing answers."""
    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.namespace,
            data_converter=data_converter(settings.codec_key),
        )
    except RuntimeError as exc:
        from keyturn.config import ConfigError

        raise ConfigError(
            f"cannot reach Temporal at {settings.temporal_address} ({exc}); "
            "start the local stack with `keyturn dev up` and `source .keyturn/dev.env`, "
            "or set KEYTURN_TEMPORAL_ADDRESS"
        ) from exc
