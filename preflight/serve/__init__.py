"""`meshery-preflight serve`: the fleet checked on a schedule and scraped by Prometheus.

The same pipeline as `check` (preflight.app), run by :mod:`.scheduler`; :mod:`.metrics` exposes the latest
report, :mod:`.probe` checks one cluster on demand, :mod:`.http` serves both, :mod:`.command` wires them.
"""
