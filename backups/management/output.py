"""The one-line `key=value` reports of the backups app's management commands (`backup_all`,
`rebuild_catalog`), written to be read by people and by `grep`/`awk` alike."""

from __future__ import annotations


def key_value_line(fields: dict) -> str:
    """`key=value` pairs in order; empty values (None, "") are left out, and a value with a
    space is double-quoted so that the line still splits on spaces between pairs."""
    parts = []
    for key, value in fields.items():
        if value is None or value == "":
            continue
        text = str(value)
        parts.append(f'{key}="{text}"' if " " in text else f"{key}={text}")
    return " ".join(parts)
