"""Request-body size limit, enforced before the body is parsed.

A declared ``Content-Length`` above the limit is refused at once; a chunked body is counted as
it arrives and refused as soon as it passes the limit. Either way the client gets 413 JSON.
A body with a ``Content-Encoding`` (gzip, say), which the service does not decode, is a 415
before it is read: parsed as it came, it got errors about its bytes ("not UTF-8"). A body that
stops arriving (a client that crashed or hung mid-upload) is a 408 once ``BODY_IDLE_S`` pass
without a byte of it, and the connection is closed; it held its connection for good.
"""

from __future__ import annotations

import asyncio
import json
import zlib

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import APIError, error_body


def _message(max_bytes: int) -> str:
    return (
        f"the request body is larger than {max_bytes} bytes; "
        "send fewer or shorter texts (or raise --max-body-bytes)"
    )


def _coding_message(coding: str) -> str:
    return (
        f"the body is sent with Content-Encoding: {coding[:40]}, which the server does not "
        "decode; send it uncompressed, without a Content-Encoding header"
    )


GZIP_MAGIC = b"\x1f\x8b"


def gunzipped(body: bytes, max_bytes: int) -> bytes:
    """A gzip body (a ``.ttl.gz`` file posted as it is) unpacked, at most ``max_bytes`` of it:
    the body limit holds for what is parsed, not only for what was sent (1 MB of gzip can
    unpack to 1 GB).

    Raises:
        APIError: 413 when it unpacks past ``max_bytes``; 422 when the gzip stream is broken.
    """
    out: list[bytes] = []
    size, rest = 0, body
    try:
        while rest:  # one member after another, as gzip.decompress reads
            if rest[:2] != GZIP_MAGIC:
                raise zlib.error(f"{len(rest)} bytes that are not gzip follow the stream")
            stream = zlib.decompressobj(wbits=31)
            out.append(stream.decompress(rest, max_bytes - size + 1))
            size += len(out[-1])
            if size > max_bytes:
                raise APIError(
                    413,
                    "body_too_large",
                    f"the gzip body unpacks to more than {max_bytes} bytes; send fewer triples "
                    "per request (or raise --max-body-bytes)",
                )
            if not stream.eof:
                raise zlib.error("the stream ends early")
            rest = stream.unused_data
    except zlib.error as e:
        raise APIError(
            422,
            "bad_triples",
            f"the body is gzip but cannot be unpacked ({e}); check the file (gzip -t FILE) or "
            "send it uncompressed",
        ) from None
    return b"".join(out)


BODY_IDLE_S = 30.0  # the longest wait for the next part of a body that has begun


class BodyStalled(HTTPException):
    """Raised while reading a body whose next part did not come in time."""

    def __init__(self, idle_s: float):
        super().__init__(
            408,
            f"the request body stopped arriving ({idle_s:g} s without a byte of it); send the "
            "request again",
            headers={"connection": "close"},
        )


class BodyTooLarge(HTTPException):
    """Raised while reading a chunked body; an HTTPException so body parsing passes it on."""

    def __init__(self, max_bytes: int):
        super().__init__(413, _message(max_bytes))


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes
        self.idle_s = BODY_IDLE_S

    async def _refuse(
        self, send: Send, status: int = 413, code: str = "body_too_large", message: str = ""
    ) -> None:
        message = message or _message(self.max_bytes)
        body = json.dumps(error_body(status, code, message)).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        if status == 415:  # RFC 9110 15.5.16: say which codings are taken
            headers.append((b"accept-encoding", b"identity"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        coding = headers.get(b"content-encoding", b"").decode("latin-1").strip()
        has_body = declared not in (None, b"0") or b"transfer-encoding" in headers
        if has_body and coding.lower() not in ("", "identity"):
            await self._refuse(send, 415, "unsupported_media_type", _coding_message(coding))
            return
        seen = 0
        started = False
        whole = not has_body  # the body has all come (or there is none)

        async def counting_receive() -> Message:
            nonlocal seen, whole
            if whole:  # only a disconnect can come: wait for it as long as it takes
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.idle_s)
            except TimeoutError:
                raise BodyStalled(self.idle_s) from None
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                whole = not message.get("more_body", False)
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send)
