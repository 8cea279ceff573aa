"""Fixtures every provider test shares: raising, and proving no secret leaked into the error."""

from __future__ import annotations

import pytest

from keyturn.providers.errors import ProviderError


@pytest.fixture
def secrets_seen() -> list[str]:
    """Every secret value a test handles; no exception message may contain one.

    A test module with secrets of its own (an admin password) overrides this.
    """
    return []


@pytest.fixture
def raises(secrets_seen):
    """Like pytest.raises, and then checks the error and its causes for secret values.

    Each whole value is checked, and each long line of one (a PEM body line
    quoted alone would leak the key just the same).
    """

    def check(exc_type: type[ProviderError], call, *args, match: str | None = None, **kwargs):
        with pytest.raises(exc_type, match=match) as info:
            call(*args, **kwargs)
        exc: BaseException | None = info.value
        while exc is not None:
            for value in secrets_seen:
                long_lines = [line for line in value.splitlines() if len(line) >= 40]
                for part in [value, *long_lines]:
                    for text in (str(exc), repr(exc)):
                        assert part not in text, f"secret leaked into {type(exc).__name__}"
            exc = exc.__cause__ or exc.__context__
        return info.value

    return check
