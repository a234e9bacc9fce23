"""The plugin's defaults, kept in glue's settings (persisted by glue in ~/.glue/settings.cfg).

No Qt here: ``register()`` runs in the plugin's ``setup()``; the preference pane edits these.
"""

from __future__ import annotations

PROFILE_FROM_MODEL = "model"

DEFAULTS: dict[str, object] = {
    "RADIOLLAVA_MODEL": "nano",
    "RADIOLLAVA_ADAPTER": "",
    "RADIOLLAVA_DEVICE": "auto",
    "RADIOLLAVA_QUANTIZE": "",
    "RADIOLLAVA_MAX_NEW_TOKENS": 256,
    "RADIOLLAVA_TEMPERATURE": 0.0,
    "RADIOLLAVA_PROFILE": PROFILE_FROM_MODEL,
}


def _validators():
    def choice(*allowed):
        def check(value):
            if value not in allowed:
                raise ValueError(f"{value!r} is not one of {allowed}")
            return value
        return check

    def positive_int(value):
        value = int(value)
        if value <= 0:
            raise ValueError("must be positive")
        return value

    def temperature(value):
        value = float(value)
        if not 0 <= value <= 5:
            raise ValueError("temperature must be between 0 and 5")
        return value

    return {"RADIOLLAVA_MODEL": str, "RADIOLLAVA_ADAPTER": str, "RADIOLLAVA_DEVICE": str,
            "RADIOLLAVA_QUANTIZE": choice("", "4bit", "8bit"),
            "RADIOLLAVA_MAX_NEW_TOKENS": positive_int, "RADIOLLAVA_TEMPERATURE": temperature,
            "RADIOLLAVA_PROFILE": str}


def register() -> None:
    """Add the settings to glue's registry (idempotent: keeps values already set)."""
    from glue.config import settings

    for key, validator in _validators().items():
        if key not in settings:
            settings.add(key, DEFAULTS[key], validator)


def get(key: str):
    from glue.config import settings

    register()
    return getattr(settings, key)


def set(key: str, value) -> None:  # noqa: A001 - mirrors glue's settings
    from glue.config import settings

    register()
    setattr(settings, key, value)
