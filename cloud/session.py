"""One session shape for every cloud: :meth:`CloudSession.read` fetches once, remembers failures, counts calls.

AWS (a session per profile, region and account), GCP and Azure (a session per run) are this class with their
own ``translate``: the SDK's exceptions become cloud.errors in one place per cloud. Every read goes through
the run's :class:`~preflight.engine.runstate.CloudReads`, so a fleet of 200 clusters in one account costs each
describe once per run (in every worker process alike), and a failure (a 403, a dead endpoint) is remembered
just as an answer is: 200 clusters never ask again. Calls are counted per ``"cloud:operation"``.

SDK objects (sessions, clients, credentials) are this process's own (:meth:`resource`), never shared.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, ClassVar, TypeVar

from preflight.cloud import errors
from preflight.engine.model import Stop
from preflight.engine.runstate import CloudReads
from preflight.engine.settings import Settings

T = TypeVar("T")


class CloudSession:
    cloud: ClassVar[str]

    def __init__(self, settings: Settings, reads: CloudReads, scope: tuple[str, ...] = ()) -> None:
        self.settings, self.reads, self.scope = settings, reads, scope

    def translate(self, exc: Exception, call: str) -> errors.CloudError:
        """The cloud.errors for an SDK exception raised by ``call`` (each cloud names its own)."""
        return errors.CloudError(f"{call} failed: {type(exc).__name__}: {exc}", call=call)

    def read(self, key: tuple[Hashable, ...], fetch: Callable[[], T], *, call: str = "") -> T:
        """``fetch()`` once per run for this session's scope and ``key``; raises the cloud.errors it failed with
        (a fresh copy each time: a remembered failure is raised by many threads)."""

        def once() -> Any:
            try:
                return fetch()
            except errors.CloudError as exc:
                return exc
            except Stop:  # a check's own final answer, never a cloud failure
                raise
            except Exception as exc:
                return self.translate(exc, call or str(key[0]))

        value = self.reads.read((self.cloud, *self.scope, *key), once)
        if isinstance(value, errors.CloudError):
            raise value.fresh()
        return value

    def count(self, operation: str, n: int = 1) -> None:
        """``n`` requests sent for ``operation``."""
        self.reads.count(f"{self.cloud}:{operation}", n)

    def calls(self) -> dict[str, int]:
        """Requests the run sent to this cloud so far (every session's, every worker's), by operation."""
        return self.reads.calls(self.cloud)

    def resource(self, key: tuple[Hashable, ...], make: Callable[[], T]) -> T:
        """An SDK object of this process (session, client, credential), made once per run."""
        return self.reads.resource((self.cloud, *key), make)
