"""Scopes of API tokens: which volumes a token reaches and which verbs it may use.

A role says how much a token may do (read < backup < admin); a scope only narrows that, it
never grants anything. A token without a scope (every environment, CLI and older token)
behaves as before.

* Volumes: `volumes` (exact names, or a prefix ending in `*` such as `db-*`) and/or
  `label_selector` (`key=value,key2=value2`, the volume list's syntax). When both are set a
  volume must match both: each stated condition narrows. A volume outside the scope answers
  404, exactly like a volume that does not exist, so a token cannot probe names; lists
  (volumes, backups, jobs, files) show only volumes in scope, and backups and jobs whose
  volume no longer exists are outside every volume scope (their labels are unknown).
* Verbs: a subset of `VERB_MINIMUM_ROLE`. A request whose verb is not in the token's verbs
  answers 403 `verb_not_in_scope`. Views declare their verbs like their roles: `write_verb`
  (default `manage`) for non-GET methods, `action_verbs` per view-set action; GET is `read`.
* Endpoints that concern no single volume (tokens, audit, repository keys, repository-wide
  verify, creating a volume, policy changes) answer 403 `outside_token_scope` to a token
  limited to volumes: those would reach past its volumes. Views that filter by scope
  declare `volume_scope = VolumeScopeSupport.ENFORCED`; policies, which hold no volume data,
  declare `READS_ONLY`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db import models
from django.db.models import Q, QuerySet
from rest_framework.permissions import SAFE_METHODS

from accounts.roles import Role, role_allows
from storage_platform.errors import BadRequest, PlatformError

MAX_SCOPE_VOLUMES = 50
MAX_LABEL_SELECTOR_LENGTH = 512
# A volume name (DNS label), or a prefix of one followed by '*'. Only a trailing '*': a
# prefix is one indexed range query and easy to read in a token list; full globs are not.
VOLUME_PATTERN = re.compile(r"^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?\Z")
VOLUME_PREFIX_PATTERN = re.compile(r"^[a-z0-9][-a-z0-9]{0,61}\*\Z")


class Verb(models.TextChoices):
    READ = "read", "read: every GET (lists, details, files, snapshot browsing, downloads)"
    BACKUP = "backup", "backup: trigger backups, cancel backup jobs"
    VERIFY = "verify", "verify: verify a backup, cancel verify jobs"
    RESTORE = "restore", "restore: restore a backup, cancel restore jobs"
    MANAGE = "manage", "manage: every other change (volumes, files, deleting backups, ...)"


# The least role that can use each verb at all: a scope listing a verb its role cannot use
# is refused at creation rather than silently meaning nothing.
VERB_MINIMUM_ROLE = {Verb.READ: Role.READ, Verb.BACKUP: Role.BACKUP, Verb.VERIFY: Role.BACKUP,
                     Verb.RESTORE: Role.ADMIN, Verb.MANAGE: Role.ADMIN}


class VolumeScopeSupport(models.TextChoices):
    ENFORCED = "enforced"  # the view filters and looks volumes up through the token's scope
    READS_ONLY = "reads_only"  # GET touches no volume data; changes reach past any volume scope


class InvalidScope(BadRequest):
    """The token's scope is not valid."""

    code = "invalid_scope"


class VerbNotInScope(PlatformError):
    """This token's scope does not allow this action."""

    http_status = 403
    code = "verb_not_in_scope"


class OutsideTokenScope(PlatformError):
    """This endpoint reaches beyond the volumes of this token's scope."""

    http_status = 403
    code = "outside_token_scope"


@dataclass(frozen=True)
class TokenScope:
    """What a token may reach. The empty scope (`UNSCOPED`) limits nothing."""

    volumes: tuple[str, ...] = ()
    label_selector: str = ""
    verbs: tuple[str, ...] = ()

    @property
    def limits_volumes(self) -> bool:
        return bool(self.volumes or self.label_selector)

    def allows_verb(self, verb: str) -> bool:
        return not self.verbs or verb in self.verbs

    def require_verb(self, verb: str) -> None:
        if not self.allows_verb(verb):
            raise VerbNotInScope(f"This token's scope does not allow '{verb}'.",
                                 detail={"verb": str(verb), "allowed": list(self.verbs)})

    def require_all_volumes(self) -> None:
        """Refuse an operation that would reach volumes outside a limited scope."""
        if self.limits_volumes:
            raise OutsideTokenScope()

    def volumes_of(self, queryset: QuerySet) -> QuerySet:
        """The volumes of `queryset` (a Volume queryset) inside the scope."""
        if self.volumes:
            by_name = Q()
            for pattern in self.volumes:
                by_name |= Q(name__startswith=pattern[:-1]) if pattern.endswith("*") else Q(name=pattern)
            queryset = queryset.filter(by_name)
        if self.label_selector:
            from volumes.filters import filter_by_labels, parse_label_selector

            queryset = filter_by_labels(queryset, parse_label_selector(self.label_selector),
                                        alias_prefix="scope_label")
        return queryset

    def of_volumes(self, queryset: QuerySet) -> QuerySet:
        """The rows of `queryset` (backups, jobs: anything with a `volume` field) whose volume
        is inside the scope."""
        if not self.limits_volumes:
            return queryset
        from volumes.models import Volume

        return queryset.filter(volume_id__in=self.volumes_of(Volume.objects.all()).values("pk"))

    def summary(self) -> str:
        """One line for the audit log and the admin: `volumes=db-*;labels=env=prod;verbs=read,backup`."""
        parts = []
        if self.volumes:
            parts.append("volumes=" + ",".join(self.volumes))
        if self.label_selector:
            parts.append("labels=" + self.label_selector)
        if self.verbs:
            parts.append("verbs=" + ",".join(self.verbs))
        return ";".join(parts)

    def as_dict(self) -> dict:
        return {"volumes": list(self.volumes), "label_selector": self.label_selector, "verbs": list(self.verbs)}


UNSCOPED = TokenScope()


def build_scope(role: str, *, volumes=None, label_selector: str | None = "", verbs=None) -> TokenScope:
    """Validate a scope for a token of `role`; `InvalidScope` (400, detail per field) otherwise.

    Volumes and verbs are deduplicated and kept in the order given; the selector is
    normalised (terms stripped, joined by ',')."""
    problems: dict[str, list[str]] = {}
    cleaned_volumes: list[str] = []
    for entry in volumes or ():
        if not isinstance(entry, str) or not (VOLUME_PATTERN.match(entry) or VOLUME_PREFIX_PATTERN.match(entry)):
            problems.setdefault("volumes", []).append(
                f"{str(entry)[:80]!r} is neither a volume name nor a name prefix ending in '*'.")
        elif entry not in cleaned_volumes:
            cleaned_volumes.append(entry)
    if len(cleaned_volumes) > MAX_SCOPE_VOLUMES:
        problems.setdefault("volumes", []).append(f"At most {MAX_SCOPE_VOLUMES} entries.")
    selector = _clean_selector(label_selector or "", problems)
    cleaned_verbs: list[str] = []
    for verb in verbs or ():
        if verb not in Verb.values:
            problems.setdefault("verbs", []).append(f"{str(verb)[:40]!r} is not one of {', '.join(Verb.values)}.")
        elif not role_allows(role, VERB_MINIMUM_ROLE[verb]):
            problems.setdefault("verbs", []).append(f"'{verb}' needs the {VERB_MINIMUM_ROLE[verb]} role.")
        elif verb not in cleaned_verbs:
            cleaned_verbs.append(verb)
    if problems:
        first = next(iter(problems.values()))[0]
        raise InvalidScope(f"Invalid scope: {first}", detail={"scope": problems})
    return TokenScope(volumes=tuple(cleaned_volumes), label_selector=selector, verbs=tuple(cleaned_verbs))


def _clean_selector(selector: str, problems: dict) -> str:
    if not selector.strip():
        return ""
    if len(selector) > MAX_LABEL_SELECTOR_LENGTH or not selector.isprintable():
        problems["label_selector"] = [f"At most {MAX_LABEL_SELECTOR_LENGTH} printable characters."]
        return ""
    from volumes.filters import parse_label_selector
    from volumes.validation import VolumeValidationError

    try:
        terms = parse_label_selector(selector)
    except VolumeValidationError as error:
        problems["label_selector"] = [error.message]
        return ""
    return ",".join(f"{key}={value}" for key, value in terms)


def token_scope(token) -> TokenScope:
    """The scope stored on an `ApiToken` row."""
    return TokenScope(volumes=tuple(token.scope_volumes or ()), label_selector=token.scope_label_selector or "",
                      verbs=tuple(token.scope_verbs or ()))


def scope_of(request) -> TokenScope:
    """The scope of the caller: its API token's, or `UNSCOPED` for an admin session."""
    token = getattr(request, "auth", None)
    if token is not None and hasattr(token, "scope_verbs"):
        return token_scope(token)
    return UNSCOPED


def required_verb(request, view) -> str | None:
    """The verb a request uses, as the view declares it; None when the view checks it itself
    (a job's cancel depends on the job's kind)."""
    action = getattr(view, "action", None)
    action_verbs = getattr(view, "action_verbs", {})
    if action in action_verbs:
        return action_verbs[action]
    if request.method in SAFE_METHODS:
        return Verb.READ
    return getattr(view, "write_verb", Verb.MANAGE)


def check_scope(request, view) -> None:
    """Raise `VerbNotInScope` or `OutsideTokenScope` (both 403) when the caller's scope
    forbids this request before any volume is looked up (so the answer says nothing about
    which volumes exist)."""
    scope = scope_of(request)
    if scope == UNSCOPED:
        return
    verb = required_verb(request, view)
    if verb is not None:
        scope.require_verb(verb)
    if scope.limits_volumes:
        support = getattr(view, "volume_scope", None)
        if support == VolumeScopeSupport.ENFORCED:
            return
        if support == VolumeScopeSupport.READS_ONLY and request.method in SAFE_METHODS:
            return
        raise OutsideTokenScope()
