"""Config keys the spec names that drivetrain spells differently: each unknown-key message
says what took the key's place, instead of only "unknown key".

Every other key of the spec's config sections is accepted as written (see
``docs/from-the-spec.md``); a few are accepted and not used, and their descriptions say so.
"""

from __future__ import annotations

#: Key (wherever it appears) -> what replaced it.
REPLACED: dict[str, str] = {
    "authentication": (
        "the spec's 'authentication' is written 'credentials_ref' here: it names the environment-variable prefix "
        "(or Airflow connection) that holds the credentials, never the secret itself"
    ),
}


def replaced_hint(key: object) -> str:
    """``"; <what replaced it>"`` for a spec key drivetrain renamed, else an empty string."""
    text = REPLACED.get(key) if isinstance(key, str) else None
    return f"; {text}" if text else ""
