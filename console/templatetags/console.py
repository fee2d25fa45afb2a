"""`{% console_overview %}` (the admin index's overview) and small display filters."""

from __future__ import annotations

from django import template
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from console.overview import build_overview

register = template.Library()


@register.inclusion_tag("console/overview.html", takes_context=True)
def console_overview(context):
    return {"overview": build_overview(timezone.now()), "request": context.get("request")}


@register.filter
def bytes_or_dash(value) -> str:
    return "–" if value in (None, "") else filesizeformat(value)
