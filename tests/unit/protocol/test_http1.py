"""sio_wsgi.protocol.http1: which request heads the keep-alive fast path takes, on bytes.

A head that is not plain must come back NOT_PLAIN (gunicorn then parses it with its
own rules), never a PlainRequest read differently from how gunicorn would read it.
"""

from __future__ import annotations

import pytest

from sio_wsgi.protocol.http1 import (
    INCOMPLETE,
    MAX_FIELDS,
    MAX_HEAD,
    MAX_REQUEST_LINE,
    NOT_PLAIN,
    PlainRequest,
    parse_request,
    response_head,
)

PATH = "/socket.io/"
QUERY = "EIO=4&transport=polling&sid=abc"
GET = f"GET {PATH}?{QUERY} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n".encode()
POST = (
    f"POST {PATH}?{QUERY} HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain;charset=UTF-8\r\n"
    "Content-Length: 5\r\n\r\n42[1]"
).encode()


def parse(data: bytes, max_body: int = 1000) -> object:
    return parse_request(data, PATH, max_body)


def test_a_plain_get() -> None:
    request = parse(GET)
    assert isinstance(request, PlainRequest)
    assert (request.method, request.query, request.target) == ("GET", QUERY, f"{PATH}?{QUERY}")
    assert request.environ == {"HTTP_HOST": "127.0.0.1", "HTTP_ACCEPT": "*/*"}
    assert request.content_length == 0
    assert request.head_size == len(GET)


def test_a_bytearray_reads_as_bytes_do() -> None:
    assert parse(bytearray(GET)) == parse(GET)
    assert parse(bytearray(GET[:-1])) is INCOMPLETE


def test_a_plain_post_and_where_its_body_starts() -> None:
    request = parse(POST + b"GET next")
    assert isinstance(request, PlainRequest)
    assert request.method == "POST"
    assert request.content_length == 5
    assert request.environ["CONTENT_TYPE"] == "text/plain;charset=UTF-8"
    assert request.environ["CONTENT_LENGTH"] == "5"
    body = POST[request.head_size : request.head_size + request.content_length]
    assert body == b"42[1]"


def test_header_names_are_case_insensitive_and_values_trimmed() -> None:
    data = GET.replace(b"Accept: */*", b"x-CUSTOM-name:\t  v a l  \t")
    request = parse(data)
    assert isinstance(request, PlainRequest)
    assert request.environ["HTTP_X_CUSTOM_NAME"] == "v a l"


def test_a_latin1_value_is_kept() -> None:
    request = parse(GET.replace(b"*/*", b"caf\xe9"))
    assert isinstance(request, PlainRequest)
    assert request.environ["HTTP_ACCEPT"] == "caf\xe9"


def test_connection_keep_alive_is_plain() -> None:
    assert isinstance(parse(GET.replace(b"Accept", b"Connection: Keep-Alive\r\nA")), PlainRequest)


def test_a_query_less_target_has_an_empty_query() -> None:
    request = parse(b"GET /socket.io/ HTTP/1.1\r\nHost: h\r\n\r\n")
    assert isinstance(request, PlainRequest)
    assert request.query == ""


@pytest.mark.parametrize("cut", [0, 1, 10, len(GET) - 2, len(GET) - 1])
def test_a_head_cut_short_is_incomplete(cut: int) -> None:
    assert parse(GET[:cut]) is INCOMPLETE


def test_gunicorn_s_default_line_and_field_limits_are_kept() -> None:
    line = f"GET {PATH}?" + "q" * (MAX_REQUEST_LINE - len(f"GET {PATH}? HTTP/1.1"))
    assert isinstance(parse(f"{line} HTTP/1.1\r\n\r\n".encode()), PlainRequest)
    assert parse(f"{line}q HTTP/1.1\r\n\r\n".encode()) is NOT_PLAIN
    fields = "".join(f"X-F{i}: v\r\n" for i in range(MAX_FIELDS))
    assert isinstance(parse(f"GET {PATH} HTTP/1.1\r\n{fields}\r\n".encode()), PlainRequest)
    more = fields + "X-One-More: v\r\n"
    assert parse(f"GET {PATH} HTTP/1.1\r\n{more}\r\n".encode()) is NOT_PLAIN


def test_a_head_that_never_ends_is_not_plain() -> None:
    data = GET[:-2] + b"X-Pad: " + b"a" * MAX_HEAD
    assert parse(data) is NOT_PLAIN


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"GET /socket.io/?", b"GET /other/?"),  # another path
        (b"GET /socket.io/?", b"GET /socket.io/x?"),
        (b"GET /socket.io/?", b"GET http://h/socket.io/?"),  # absolute form
        (b"GET /socket.io/?", b"GET *?"),
        (b"GET ", b"HEAD "),
        (b"GET ", b"OPTIONS "),
        (b"GET ", b"get "),
        (b"GET ", b"GET  "),  # two spaces
        (b"HTTP/1.1", b"HTTP/1.0"),
        (b"HTTP/1.1", b"HTTP/2.0"),
        (b"HTTP/1.1", b"HTTP/1.1 "),
        (b"Accept: */*", b"Transfer-Encoding: chunked"),
        (b"Accept: */*", b"Upgrade: websocket"),
        (b"Accept: */*", b"Expect: 100-continue"),
        (b"Accept: */*", b"TE: trailers"),
        (b"Accept: */*", b"Connection: close"),
        (b"Accept: */*", b"Connection: keep-alive, Upgrade"),
        (b"Accept: */*", b"Host: again"),  # a repeated header
        (b"Accept: */*", b"X_Underscore: 1"),  # gunicorn drops or refuses those
        (b"Accept: */*", b"Bad Name: 1"),
        (b"Accept: */*", b"Accept : */*"),
        (b"Accept: */*", b"Accept: a\x00b"),
        (b"Accept: */*", b"Accept: a\x7fb"),
        (b"Accept: */*", b"Accept: a\rb"),
        (b"Accept: */*", b"Accept: a\nb"),  # a bare LF inside the head
        (b"Accept: */*", b"Accept: a\r\n b"),  # obsolete line folding
        (b"Accept: */*", b"NoColon"),
        (b"Accept: */*", b": empty-name"),
        (b"Accept: */*", b"Content-Length: 1"),  # a GET with a body
    ],
)
def test_anything_else_is_not_plain(old: bytes, new: bytes) -> None:
    assert old in GET
    assert parse(GET.replace(old, new, 1)) is NOT_PLAIN


@pytest.mark.parametrize(
    "length",
    [b"+5", b"-5", b" 5x", b"5,5", b"0x5", b"05 5", b"99999999999", b""],
)
def test_a_content_length_that_is_not_digits_is_not_plain(length: bytes) -> None:
    assert parse(POST.replace(b"Content-Length: 5", b"Content-Length: " + length)) is NOT_PLAIN


def test_two_content_lengths_are_not_plain() -> None:
    data = POST.replace(b"Content-Length: 5", b"Content-Length: 5\r\nContent-Length: 5")
    assert parse(data) is NOT_PLAIN


def test_a_post_without_length_or_over_the_limit_is_not_plain() -> None:
    assert parse(POST.replace(b"Content-Length: 5\r\n", b"")) is NOT_PLAIN
    assert parse(POST, max_body=4) is NOT_PLAIN
    assert isinstance(parse(POST, max_body=5), PlainRequest)


def test_a_get_with_content_length_zero_is_plain() -> None:
    data = GET.replace(b"Accept: */*", b"Content-Length: 0")
    request = parse(data)
    assert isinstance(request, PlainRequest)
    assert request.content_length == 0


def test_response_head() -> None:
    head = response_head(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", "2")],
        "Mon, 07 Dec 2026 15:00:00 GMT",
    )
    assert head == (
        b"HTTP/1.1 200 OK\r\nDate: Mon, 07 Dec 2026 15:00:00 GMT\r\n"
        b"Content-Type: text/plain\r\nContent-Length: 2\r\n\r\n"
    )
