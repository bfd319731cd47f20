"""meshery-preflight: connectivity diagnostics and preflight checks for Meshery fleets."""

__version__ = "0.1.0"
TOOL_NAME = "meshery-preflight"
