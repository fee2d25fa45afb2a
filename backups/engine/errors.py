"""PLACEHOLDER: the engine's error hierarchy (replaced by the engine work)."""


class EngineError(Exception):
    code = "engine_error"
    http_status = 500
    transient = False
    exit_code = 1
