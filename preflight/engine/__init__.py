"""The engine: the model, planning, running, probing and the run state. It imports no check, cloud
adapter, renderer, application layer or lab (a folder rule, enforced by import-linter)."""
