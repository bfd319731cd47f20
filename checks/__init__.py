"""The probes. Importing this package registers every check with preflight's registry.

To add a check, copy a neighbour in the family module that fits (or add a module and list it here).
Import order is report order.
"""

# isort: off
from preflight.checks import kubeconfig, kube_api, broker_path, meshery, broker, rbac, aws, gcp, azure, fleet

# isort: on

__all__ = ["aws", "azure", "broker", "broker_path", "fleet", "gcp", "kube_api", "kubeconfig", "meshery", "rbac"]
