"""A local lab of fake Kubernetes clusters for tests, demos and benchmarks.

Everything listens on 127.0.0.0/8 only. The lab fakes the world; it must never import ``checks``
or ``reports``, so it cannot encode what the checks are expected to conclude.
"""
