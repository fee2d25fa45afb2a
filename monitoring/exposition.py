"""A fast Prometheus text-format (0.0.4) writer for the platform's own collectors.

Why not `prometheus_client.generate_latest`: it re-escapes and re-sorts every sample's labels
(~7 µs a sample). With 10,000 volumes the catalog has ~60,000 per-volume samples, which alone
would take ~450 ms against a 250 ms scrape budget. Here a label set is rendered once per
distinct label dict object (collectors share one dict per volume across families), which
brings the same exposition to well under 100 ms. The output is the same format; a test parses
both writers' output and compares the samples.

Supports what our collectors emit: gauge, counter, histogram and untyped families without
`_created` samples or exemplars.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Iterable

from prometheus_client.core import Metric

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_TYPE_NAMES = {"gauge": "gauge", "counter": "counter", "histogram": "histogram", "unknown": "untyped"}


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _escape_label_value(value: str) -> str:
    if "\\" in value or '"' in value or "\n" in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


def render_labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{name}="{_escape_label_value(str(value))}"' for name, value in sorted(labels.items())) + "}"


def format_value(value: float) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    value = float(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(value)


def render(metrics: Iterable[Metric]) -> str:
    """The text exposition of `metrics` (e.g. `registry.collect()`, consumed here).

    The cyclic garbage collector is paused meanwhile: a 10,000-volume scrape allocates some
    200,000 short-lived tuples, dicts and strings (none in reference cycles), which used to
    trigger full collections that made one scrape in three ~60 % slower. Reference counting
    still frees everything; the collector runs again right after.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _render(metrics)
    finally:
        if was_enabled:
            gc.enable()


def _render(metrics: Iterable[Metric]) -> str:
    output: list[str] = []
    append = output.append  # hot loop: ~60,000 samples at 10,000 volumes
    label_cache: dict[int, tuple[dict, str]] = {}
    cached_labels = label_cache.get
    for metric in metrics:
        if metric.type not in _TYPE_NAMES:
            raise ValueError(f"metric type {metric.type!r} of {metric.name} is not supported here")
        name = metric.name + "_total" if metric.type == "counter" else metric.name
        append(f"# HELP {name} {_escape_help(metric.documentation)}\n# TYPE {name} {_TYPE_NAMES[metric.type]}\n")
        for sample_name, labels, value, *_ in metric.samples:
            cached = cached_labels(id(labels))
            # The dict is kept in the cache entry so its id cannot be reused during this render.
            if cached is None or cached[0] is not labels:
                cached = (labels, render_labels(labels))
                label_cache[id(labels)] = cached
            # Fast paths for the common cases; `value - value == 0` is false for inf and NaN.
            value_type = type(value)
            if value_type is int:
                text = str(value)
            elif value_type is float and value - value == 0:
                text = repr(value)
            else:
                text = format_value(value)
            append(f"{sample_name}{cached[1]} {text}\n")
    return "".join(output)
