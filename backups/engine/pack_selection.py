"""Which packs a data check reads when the catalog remembers when each pack was last read.

Reading a random share of the packs on every verify can leave a new pack unread for many
runs, so damage to it goes unseen until a restore needs it. With a last-verified time per
pack (kept by the caller: the engine stores nothing about verifies) a verify can do what
Proxmox Backup Server's "re-verify after N days" does, in pack terms:

* every pack that was never verified is read (new data is checked at the first verify
  after it was written, whatever the percentage);
* every pack last verified at or before `due_before` is read (the caller sets it so that no
  pack goes longer than its re-verify window without being read, whatever the percentage);
* then the packs verified longest ago, until `percent` of all packs has been read, so that
  over successive runs every pack is read again in turn.

`percent` 0 reads nothing (a structure-only verify), whatever `due_before` says. The
function is pure: the same inputs always give the same packs, in reading order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime


def unverified_first(pack_ids: Iterable[str], verified_at: Mapping[str, datetime],
                     percent: float, *, due_before: datetime | None = None) -> list[str]:
    """The packs to read: every id missing from `verified_at`, then the oldest verified ones:
    all of those verified at or before `due_before`, and at least enough to make `percent`
    (0-100) of `pack_ids` in all (see the module docstring)."""
    if not 0.0 <= float(percent) <= 100.0:
        raise ValueError("percent must be between 0 and 100")
    candidates = sorted(set(pack_ids))
    if float(percent) == 0.0 or not candidates:
        return []
    never = [pack_id for pack_id in candidates if pack_id not in verified_at]
    verified = sorted((pack_id for pack_id in candidates if pack_id in verified_at),
                      key=lambda pack_id: (verified_at[pack_id], pack_id))
    budget = math.ceil(len(candidates) * float(percent) / 100.0)
    due = 0 if due_before is None else sum(1 for pack_id in verified if verified_at[pack_id] <= due_before)
    return never + verified[:max(due, budget - len(never))]


__all__ = ["unverified_first"]
