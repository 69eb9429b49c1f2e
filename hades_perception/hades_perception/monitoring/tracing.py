"""Optional traces of each frame's stages (OpenTelemetry), so that a slow stage can be
found in a tracing backend (Jaeger, Tempo, Azure Monitor, ...) without reading logs.

One trace per frame: a `frame` span from the moment the frame was received to the end of
publishing, with a child span per stage (queue, conversion, preprocess, engine,
postprocess, monitoring, publish), made after the frame from the times the adapter
already measures: tracing adds no clock reads to the frame path, and nothing at all when
it is off. Spans go to an OTLP/HTTP collector (`endpoint`, e.g.
http://127.0.0.1:4318/v1/traces) in batches, on the SDK's own thread.

Needs the `tracing` extra (opentelemetry-sdk, opentelemetry-exporter-otlp-proto-http);
imported only when tracing is switched on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import set_span_in_context

Stage = tuple[str, int, int]  # name, start and end (ns since the epoch)


class FrameTracer:
    """Frame traces for one node (or server): its own TracerProvider, never the global one."""

    def __init__(
        self, service: str, endpoint: str | None = None, exporter: SpanExporter | None = None, **attributes: Any
    ) -> None:
        """Spans go to `exporter` when given (synchronously: tests, or a collector in-process),
        else to an OTLP/HTTP collector at `endpoint` in batches."""
        self.provider = TracerProvider(resource=Resource.create({"service.name": service, **attributes}))
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        else:
            self.provider.add_span_processor(SimpleSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("hades_perception")

    def frame(self, start_ns: int, end_ns: int, stages: Sequence[Stage], attributes: dict[str, Any]) -> None:
        """One frame's trace: the `frame` span and a child per stage, with their own times."""
        root = self.tracer.start_span("frame", start_time=start_ns, attributes=attributes)
        context = set_span_in_context(root)
        for name, start, end in stages:
            self.tracer.start_span(name, context=context, start_time=start).end(end_time=end)
        root.end(end_time=end_ns)

    def close(self) -> None:
        """Send what is batched and stop."""
        self.provider.shutdown()


def sequential(first_ns: int, durations_ms: Sequence[tuple[str, float]]) -> list[Stage]:
    """Stages that ran one after another from `first_ns`, from their durations."""
    out, t = [], first_ns
    for name, ms in durations_ms:
        end = t + round(ms * 1e6)
        out.append((name, t, end))
        t = end
    return out
