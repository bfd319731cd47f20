"""Errors that end a run with exit 2 and one clear line, never a traceback."""


class ConfigError(Exception):
    """Bad input from the user: a kubeconfig, fleet file, flag or environment value."""
