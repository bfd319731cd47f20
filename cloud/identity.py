"""Which cloud account and cluster a context belongs to, from what the user already has.

The kubeconfig usually says enough (the provider signals of preflight.engine.provider carry the region,
account, project, location, resource group and cluster name they reveal); the fleet file states or
overrides them per cluster. `sources` says where each id came from, for evidence. `declared` tells the
checks the user asked for this cloud, so a missing credential is an error there rather than a skip.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from preflight.engine import provider
from preflight.engine.targets import ClusterTarget

# provider -> the fleet file's key for its ids
FLEET_KEY = {"eks": "aws", "gke": "gcp", "aks": "azure"}


@dataclass
class CloudIds:
    provider: str  # eks | gke | aks | "" when none
    values: dict[str, str] = field(default_factory=dict)
    declared: bool = False
    # id -> where it came from ("fleet file", "context name 'arn:aws:eks:...'")
    sources: dict[str, str] = field(default_factory=dict)

    def get(self, key: str) -> str | None:
        return self.values.get(key) or None


def _cloud(target: ClusterTarget, detection: provider.Detection) -> str:
    if target.provider in FLEET_KEY:
        return target.provider
    declared = next((p for p, key in FLEET_KEY.items() if key in target.provider_ids), None)
    if declared:
        return declared
    return detection.provider if detection.provider in FLEET_KEY else ""


def identify(target: ClusterTarget) -> CloudIds:
    detection = provider.detect(target)
    cloud = _cloud(target, detection)
    if not cloud:
        return CloudIds("")
    fleet_ids = target.provider_ids.get(FLEET_KEY[cloud], {})
    ids = CloudIds(cloud, declared=bool(fleet_ids))
    # Strongest signal first: the first to name an id gives it; the fleet file overrides them all.
    for sig in detection.signals:
        if sig.provider != cloud:
            continue
        for key, value in sig.ids.items():
            if value and key not in ids.values:
                ids.values[key] = value
                ids.sources[key] = f"{sig.source} {sig.value!r}"
    for key, value in fleet_ids.items():
        if value:
            ids.values[key] = value
            ids.sources[key] = "fleet file"
    return ids
