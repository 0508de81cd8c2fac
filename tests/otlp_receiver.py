"""A small OTLP/gRPC trace receiver on loopback, built on the OpenTelemetry protobuf packages."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


def attributes(items) -> dict:
    """OTLP KeyValue list -> dict of plain values."""
    out = {}
    for item in items:
        value = item.value
        kind = value.WhichOneof("value")
        if kind == "array_value":
            out[item.key] = [getattr(v, v.WhichOneof("value")) for v in value.array_value.values]
        else:
            out[item.key] = getattr(value, kind) if kind else None
    return out


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """Keeps every exported span as (service name, span)."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, object]] = []
        self._changed = threading.Condition()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    def Export(self, request, context):
        with self._changed:
            for resource_spans in request.resource_spans:
                service = attributes(resource_spans.resource.attributes).get("service.name")
                for scope_spans in resource_spans.scope_spans:
                    self.spans.extend((service, span) for span in scope_spans.spans)
            self._changed.notify_all()
        return trace_service_pb2.ExportTraceServiceResponse()

    def wait_for(self, found: Callable[[list], list], timeout: float = 60) -> list:
        """Block until `found(spans)` is non-empty (new exports wake it); return that."""
        with self._changed:
            self._changed.wait_for(lambda: found(self.spans), timeout=timeout)
            return found(self.spans)

    def start(self) -> Receiver:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=None)
