"""Bad input is refused with a 4xx and a JSON body that says what was expected, and the
server goes on serving: after each refusal a good plate is still predicted.

The bundle server takes bodies of at most 2 MB."""

from __future__ import annotations

import struct
import zlib

import pytest

from hades_perception.inference.pipeline import MAX_PIXELS
from tests.api.conftest import Reply, Server, multipart

LIMIT = 2 * 2**20


def blank_png(width: int, height: int) -> bytes:
    """A valid all-black 8-bit grey PNG, built row by row (never the whole image in memory):
    108 Mpx compress to about 100 kB."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte + pixels
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def refused(r: Reply, status: int, *words: str) -> dict:
    assert r.status == status, r
    assert r.headers["Content-Type"] == "application/json"
    body = r.json()
    assert set(body) >= {"error", "detail"} and body["detail"]
    for word in words:
        assert word in body["detail"], body
    return body


@pytest.fixture(scope="module")
def huge_png() -> bytes:
    return blank_png(12000, 9000)


def test_a_file_that_is_not_an_image_is_unsupported_media(bundle_server: Server):
    r = bundle_server.predict(b"plant_id,root_mm\n1,23.5\n", bundle_server.key("predict"), filename="roots.csv")
    refused(r, 415, "not a PNG, JPEG or TIFF")
    bundle_server.assert_still_serving()


def test_a_truncated_png_is_a_bad_image(bundle_server: Server, plate_png: bytes):
    r = bundle_server.predict(plate_png[: len(plate_png) // 2], bundle_server.key("predict"))
    refused(r, 400, "truncated or corrupt")
    bundle_server.assert_still_serving()


def test_a_12000x9000_image_is_too_large(bundle_server: Server, huge_png: bytes):
    assert len(huge_png) < LIMIT  # small on the wire: a decompression bomb
    r = bundle_server.predict(huge_png, bundle_server.key("predict"))
    refused(r, 413, "12000x9000", str(MAX_PIXELS))
    bundle_server.assert_still_serving()


def test_the_12000x9000_image_is_refused_from_its_header_before_any_decode(bundle_server: Server, huge_png: bytes):
    # Only the header and the start of the pixels: decoding would fail (400), so a 413
    # shows the size was judged before anything was decoded.
    r = bundle_server.predict(huge_png[:200], bundle_server.key("predict"))
    refused(r, 413, "12000x9000", "nothing was decoded")
    bundle_server.assert_still_serving()


def test_a_json_body_is_the_wrong_content_type(bundle_server: Server):
    r = bundle_server.request("POST", "/v1/predict", bundle_server.key("predict"), json_body={"image": "plate.png"})
    refused(r, 415, "multipart/form-data", "application/json")
    bundle_server.assert_still_serving()


def test_a_form_without_the_image_field_is_invalid(bundle_server: Server, plate_png: bytes):
    body, ctype = multipart({"picture": ("plate.png", plate_png, "image/png")})
    r = bundle_server.request(
        "POST", "/v1/predict", bundle_server.key("predict"), body=body, headers={"Content-Type": ctype}
    )
    refused(r, 422, "'image'", "picture")
    bundle_server.assert_still_serving()


def test_a_body_declared_larger_than_the_limit_is_refused_before_it_is_sent(bundle_server: Server):
    conn = bundle_server.connection(timeout=10)
    try:
        conn.putrequest("POST", "/v1/predict")
        conn.putheader("Authorization", f"Bearer {bundle_server.key('predict')}")
        conn.putheader("Content-Type", "multipart/form-data; boundary=x")
        conn.putheader("Content-Length", str(50 * 2**20))
        conn.endheaders()  # no body sent: the answer cannot have waited for it
        r = conn.getresponse()
        reply = Reply(r.status, r.headers, r.read())
    finally:
        conn.close()
    refused(reply, 413, "50.0 MB", "at most 2 MB")
    bundle_server.assert_still_serving()


def test_a_streamed_body_is_cut_off_once_it_passes_the_limit(bundle_server: Server):
    """Chunked, with no length to judge by: the server counts and stops at the limit."""
    conn = bundle_server.connection(timeout=10)
    try:
        conn.putrequest("POST", "/v1/predict")
        conn.putheader("Authorization", f"Bearer {bundle_server.key('predict')}")
        conn.putheader("Content-Type", "multipart/form-data; boundary=x")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        head = b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n'
        conn.send(f"{len(head):x}\r\n".encode() + head + b"\r\n")
        block = bytes(64 * 1024)
        sent = 0
        while sent <= LIMIT:  # a little over the limit, then wait for the answer
            conn.send(f"{len(block):x}\r\n".encode() + block + b"\r\n")
            sent += len(block)
        r = conn.getresponse()
        reply = Reply(r.status, r.headers, r.read())
    finally:
        conn.close()
    refused(reply, 413, "streamed", "at most 2 MB")
    bundle_server.assert_still_serving()


def test_an_invalid_query_value_is_invalid(bundle_server: Server, plate_png: bytes):
    r = bundle_server.predict(plate_png, bundle_server.key("predict"), "?masks=perhaps")
    refused(r, 422, "masks")
    bundle_server.assert_still_serving()


def test_an_unknown_query_parameter_is_invalid_rather_than_ignored(bundle_server: Server, plate_png: bytes):
    r = bundle_server.predict(plate_png, bundle_server.key("predict"), "?mask=true")  # for ?masks=true
    refused(r, 422, "unknown query parameter", "'mask'", "masks, overlay")
    bundle_server.assert_still_serving()


def test_two_files_in_one_request_are_a_bad_request(bundle_server: Server, plate_png: bytes):
    body, ctype = multipart({"image": ("a.png", plate_png, "image/png"), "second": ("b.png", plate_png, "image/png")})
    r = bundle_server.request(
        "POST", "/v1/predict", bundle_server.key("predict"), body=body, headers={"Content-Type": ctype}
    )
    refused(r, 400, "files")
    bundle_server.assert_still_serving()


def test_an_unknown_route_is_a_json_404(bundle_server: Server):
    refused(bundle_server.request("GET", "/v1/nothing-here"), 404, "/v1/nothing-here")
