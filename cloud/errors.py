"""One vocabulary for what can go wrong when a cloud adapter reads an account (AWS, GCP, Azure).

The adapters raise these; checks/cloud_common.py turns them into findings in one place, so a missing
permission reads the same on every cloud. ``hint`` is the one fix; ``call`` the operation that failed.
"""

from __future__ import annotations

import copy


class CloudError(Exception):
    """The cloud API could not answer for this cluster (any failure the subclasses do not name)."""

    failure = "error"

    def __init__(self, message: str, hint: str = "", *, call: str = "", code: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.message, self.hint, self.call, self.code, self.detail = message, hint, call, code, detail

    def fresh(self) -> CloudError:
        """A copy to raise again: a failure cached for the run is re-raised by many threads."""
        return copy.copy(self).with_traceback(None)


class NoCredentials(CloudError):
    """No credential at all (nothing configured, or the cloud's SDK extra is not installed)."""

    failure = "no-credentials"


class Unauthenticated(CloudError):
    """A credential is configured but the cloud rejects it (expired, revoked, wrong tenant)."""

    failure = "unauthenticated"


class Forbidden(CloudError):
    """Authenticated, but a read is not allowed; ``permission`` names the action or role it needs."""

    failure = "forbidden"

    def __init__(
        self, message: str, hint: str = "", *, permission: str = "", call: str = "", code: str = "", detail: str = ""
    ) -> None:
        super().__init__(message, hint, call=call, code=code, detail=detail)
        self.permission = permission


class NotFound(CloudError):
    """The identifiers name nothing in the account (wrong cluster, region, subscription...)."""

    failure = "not-found"


class Throttled(CloudError):
    """The cloud refused the request for its rate (Throttling, 429)."""

    failure = "throttled"


class Unavailable(CloudError):
    """The cloud API is unreachable from here (no route, proxy, TLS trust)."""

    failure = "unreachable"


class Timeout(Unavailable):
    """The cloud API did not answer within the deadline."""

    failure = "timeout"
