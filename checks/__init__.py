"""The probes. Importing this package registers every check with preflight's registry.

To add a check, copy a neighbour in the family module that fits (or add a module and list it here).
Import order is report order.
"""

# isort: off
from preflight.checks import kubeconfig, kube_api, broker_path, meshery, broker, rbac
from preflight.checks import aws, aws_kubelet, gcp, gcp_kubelet, azure, fleet

# isort: on

__all__ = [
    "aws",
    "aws_kubelet",
    "azure",
    "broker",
    "broker_path",
    "fleet",
    "gcp",
    "gcp_kubelet",
    "kube_api",
    "kubeconfig",
    "meshery",
    "rbac",
]
