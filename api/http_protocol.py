"""uvicorn's own error answer in the service's JSON error shape.

uvicorn answers a request that its HTTP parser rejects (a malformed request line or header, a
URL past 64 KiB under httptools, a request head past 16 KiB under h11) with a text/plain 400
before the app ever sees it. These protocol classes (``uvicorn.run(..., http=...)``) send the
same 400 as ``{"error": {...}}`` JSON, like every other error of the service.
"""

from __future__ import annotations

import asyncio
import json

from uvicorn.protocols.http.h11_impl import H11Protocol

from api.errors import error_body

MESSAGE = (
    "the server could not parse this HTTP request: it is malformed, or its URL or headers are "
    "too long; keep the URL under 8 KB and send large input in a POST body"
)
BODY = json.dumps(error_body(400, "bad_request", MESSAGE)).encode()


class JSONErrorH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, answering unparsable requests with JSON."""

    def send_400_response(self, msg: str) -> None:
        import h11

        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode()),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=BODY),
            h11.EndOfMessage(),
        ):
            output = self.conn.send(event)
            if output:
                self.transport.write(output)
        self.transport.close()


def http_protocol() -> type[asyncio.Protocol]:
    """What uvicorn's ``http="auto"`` picks (httptools when installed, else h11), answering
    unparsable requests with JSON."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # httptools is not installed
        return JSONErrorH11Protocol

    class JSONErrorHttpToolsProtocol(HttpToolsProtocol):
        """uvicorn's httptools protocol, answering unparsable requests with JSON."""

        def send_400_response(self, msg: str) -> None:
            head = [b"HTTP/1.1 400 Bad Request\r\n"]
            for name, value in self.server_state.default_headers:
                head += [name, b": ", value, b"\r\n"]
            head += [
                b"content-type: application/json\r\n",
                b"content-length: " + str(len(BODY)).encode() + b"\r\n",
                b"connection: close\r\n\r\n",
            ]
            self.transport.write(b"".join(head) + BODY)
            self.transport.close()

    return JSONErrorHttpToolsProtocol
