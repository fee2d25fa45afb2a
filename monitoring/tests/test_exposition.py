"""The fast text writer escapes like the reference writer and formats special values."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from monitoring.exposition import render
from monitoring.tests.factories import samples


class Fixed:
    def collect(self):
        gauge = GaugeMetricFamily("odd_values", "Help with a \\ backslash\nand a newline.", labels=["worker"])
        gauge.add_metric(['celery@"quoted"\\host\nnext'], 1.5)
        gauge.add_metric(["plain"], math.inf)
        gauge.add_metric(["negative"], -math.inf)
        gauge.add_metric(["huge"], 1.0e22)
        gauge.add_metric(["integer"], 7)
        yield gauge
        counter = CounterMetricFamily("events", "Events.", labels=["kind"])
        counter.add_metric(["a"], 3)
        yield counter

    def describe(self):
        return []


def test_fast_writer_agrees_with_prometheus_client_on_escaping_and_values():
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed())

    ours = render(registry.collect())

    assert samples(ours) == samples(generate_latest(registry).decode())
    assert "# TYPE events_total counter" in ours
    assert 'worker="plain"} +Inf' in ours
    assert 'worker="negative"} -Inf' in ours


def test_nan_is_written_as_nan():
    class NaN:
        def collect(self):
            yield GaugeMetricFamily("not_a_number", "NaN.", value=math.nan)

    text = render(NaN().collect())
    assert "not_a_number NaN" in text
