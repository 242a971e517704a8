"""The HTTP API of the ledger (Litestar): ingest, probes, metrics, OpenAPI."""

from services.http.app import MAX_BODY_BYTES, build_http_app

__all__ = ["MAX_BODY_BYTES", "build_http_app"]
