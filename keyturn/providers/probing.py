"""verify_new's and confirm_revoked's "ask until the service agrees" written once.

Proving a credential works (verify_new) or is dead (confirm_revoked) is the
same loop for every provider: present the secret to the service, and since the
service is eventually consistent (keyturn.providers.propagation) ask again a
bounded number of times until the answer is the one expected. Only the
question differs. A provider built on `Probing` states it once as
`probe(target, secret, step)` and returns an `Answer`; `expect_accepted`
raises VerificationFailed and `expect_refused` raises StillValid, both ending
their message "on all N attempts", so that wording lives here alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from keyturn.providers.errors import StillValid, VerificationFailed
from keyturn.providers.propagation import Propagation


@dataclass(frozen=True)
class Answer:
    """One probe's answer: did the service accept the secret, and what did it say.

    value: what an accepting service gave back (the identity the secret
        authenticates as, a signature), for the provider's own further checks.
    refusal: why a refusing service refused (an error code or message), for
        the message of VerificationFailed; "" when it gives no reason.
    """

    accepted: bool
    value: Any = None
    refusal: str = ""


def accepted(value: Any = None) -> Answer:
    return Answer(True, value=value)


def refused(refusal: str = "") -> Answer:
    return Answer(False, refusal=refusal)


class Probing:
    """The propagation-retried probe loop; a subclass sets `_propagation` and writes `probe`."""

    _propagation: Propagation

    def probe(self, target: Any, secret: Any, step: str) -> Answer:
        """Present `secret` to the service once: accepted, or refused and why.

        `step` names the protocol step asking ("verify", "confirm_revoked"), for
        the messages of errors that are not an answer (a transient failure).
        """
        raise NotImplementedError

    @property
    def on_all_attempts(self) -> str:
        return f"on all {self._propagation.attempts} attempts"

    def _ask(self, target: Any, secret: Any, step: str, *, accepted: bool) -> Answer:
        return self._propagation.settle(
            lambda: self.probe(target, secret, step), lambda answer: answer.accepted == accepted
        )

    def expect_accepted(self, target: Any, secret: Any, failure: str, step: str = "verify") -> Any:
        """The accepting answer's value; VerificationFailed if every attempt was refused.

        The message is "verify: <failure> (<refusal>) on all N attempts".
        """
        answer = self._ask(target, secret, step, accepted=True)
        if not answer.accepted:
            why = f" ({answer.refusal})" if answer.refusal else ""
            raise VerificationFailed(f"verify: {failure}{why} {self.on_all_attempts}")
        return answer.value

    def expect_refused(
        self, target: Any, secret: Any, still: str, step: str = "confirm_revoked"
    ) -> None:
        """Return once the service refuses `secret`; StillValid ("<still> on all N attempts")
        if it accepted it every time."""
        if self._ask(target, secret, step, accepted=False).accepted:
            raise StillValid(f"{still} {self.on_all_attempts}")
