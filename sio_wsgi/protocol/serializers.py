"""Payload serializers for the Socket.IO layer.

A serializer turns Socket.IO payloads into wire data and back. Two kinds exist:

* **text** serializers (``whole_packet = False``, e.g. :class:`JSONSerializer`) only
  encode the JSON part of a packet; :mod:`sio_wsgi.protocol.sio` writes the
  ``<type>[<n>-][<nsp>,][<id>]`` header and splits binary data into attachments.
* **whole-packet** serializers (``whole_packet = True``, e.g. :class:`MsgpackSerializer`)
  encode a complete packet as a map ``{type, nsp, data, id}`` in one binary
  Engine.IO message, the way the socket.io-msgpack-parser does; there are no
  attachments because bytes are native.

Serializers are passed to the codec, never patched onto a class.
"""

from __future__ import annotations

import importlib
import json as _stdlib_json
import logging
import re
import types
from collections.abc import Callable
from typing import Any, NoReturn, Protocol, runtime_checkable

from sio_wsgi.exceptions import ConfigError, LocalProtocolError, RemoteProtocolError

__all__ = [
    "Serializer",
    "JSONSerializer",
    "MsgpackSerializer",
    "get_serializer",
]

logger = logging.getLogger(__name__)

Payload = Any
"""A Socket.IO payload: JSON values (``dict``, ``list``, ``str``, numbers, ``bool``,
``None``) and ``bytes``, as the application sends them and the peer's decoder
builds them. User data passes through unchecked, hence ``Any``."""


class JSONModule(Protocol):
    """The part of :mod:`json` a custom ``json`` module must offer."""

    def dumps(self, obj: Payload, /, *, separators: tuple[str, str]) -> str: ...

    def loads(self, s: str, /) -> Payload: ...


@runtime_checkable
class Serializer(Protocol):
    """What the Socket.IO codec needs from a serializer."""

    name: str
    whole_packet: bool

    def dumps(self, obj: Payload) -> str | bytes:
        """Encode ``obj``.

        :returns: ``str`` for text serializers, ``bytes`` for whole-packet ones.
        :raises LocalProtocolError: when ``obj`` cannot be encoded.
        """
        ...

    def loads(self, data: str | bytes) -> Payload:
        """Decode ``data``.

        :param data: what the peer sent.
        :returns: the decoded value.
        :raises RemoteProtocolError: when ``data`` is not valid.
        """
        ...


_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape_surrogate(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def _utf8_safe(text: str) -> str:
    """Escape lone surrogates (``"\\ud800"`` decoded from a peer's JSON) as ``\\uXXXX``.

    They can only occur inside JSON strings, so the escaped text is the same JSON
    value, and it can be encoded to UTF-8 by the transports (a raw surrogate
    cannot: it would break the connection of every client it is sent to).

    :param text: JSON text.
    :returns: ``text``, with every surrogate code point escaped.
    """
    if text.isascii():
        return text
    return _SURROGATE.sub(_escape_surrogate, text)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


#: one decoder for every packet (``json.loads`` with options builds a new one per call)
_DECODER = _stdlib_json.JSONDecoder(parse_constant=_reject_constant)


def _not_serializable(obj: object) -> NoReturn:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _make_json_text() -> Callable[[Payload], str]:
    """Compact JSON text, UTF-8 rather than ``\\u`` escapes, NaN refused.

    ``json.dumps`` with options builds an encoder per call (two thirds of its
    cost on a small payload); this builds the C encoder once. It keeps no
    circular-reference table, so a cycle ends in ``RecursionError``.
    """
    make = getattr(_stdlib_json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator: the plain call
        encoder = _stdlib_json.JSONEncoder(
            separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        return encoder.encode
    encode_c = make(
        None,  # markers: no circular-reference table
        _not_serializable,  # default
        _stdlib_json.encoder.encode_basestring,  # encoder: UTF-8, not ensure_ascii
        None,  # indent
        ":",  # key_separator
        ",",  # item_separator
        False,  # sort_keys
        False,  # skipkeys
        False,  # allow_nan
    )

    def json_text(obj: Payload) -> str:
        return "".join(encode_c(obj, 0))

    return json_text


_json_text = _make_json_text()


class JSONSerializer:
    """Compact JSON (the Socket.IO default parser).

    NaN and Infinity are refused both ways, as ``JSON.parse`` would refuse them.

    :param json_module: a module with ``dumps``/``loads`` compatible with :mod:`json`
        (the ``json`` argument of :class:`sio_wsgi.server.Server`); the standard
        library when ``None``. Only ``dumps(obj, separators=...)`` and ``loads(s)``
        are assumed for a custom module.
    """

    name = "default"
    whole_packet = False

    def __init__(self, json_module: JSONModule | None = None) -> None:
        self._module: JSONModule = _stdlib_json if json_module is None else json_module
        self._custom = json_module is not None and json_module is not _stdlib_json

    def dumps(self, obj: Payload) -> str:
        """Encode ``obj`` as compact JSON text.

        :param obj: a JSON-compatible value.
        :returns: the JSON text.
        :raises LocalProtocolError: when ``obj`` is not JSON serializable.
        """
        try:
            if self._custom:
                return _utf8_safe(str(self._module.dumps(obj, separators=(",", ":"))))
            return _utf8_safe(_json_text(obj))
        except (TypeError, ValueError, RecursionError) as exc:
            raise LocalProtocolError(f"cannot encode payload as JSON: {exc}") from exc

    def loads(self, data: str | bytes) -> Payload:
        """Decode JSON text.

        :returns: the decoded value.
        :raises RemoteProtocolError: on invalid JSON, trailing garbage or
            excessive nesting.
        """
        if not isinstance(data, str):
            raise RemoteProtocolError("expected a text message")
        try:
            if self._custom:
                return self._module.loads(data)
            return _DECODER.decode(data)
        except (ValueError, RecursionError) as exc:
            raise RemoteProtocolError(f"invalid JSON payload: {exc}") from exc


class MsgpackSerializer:
    """MessagePack, compatible with the socket.io-msgpack-parser.

    :raises ConfigError: when the ``msgpack`` package is not installed.
    """

    name = "msgpack"
    whole_packet = True

    def __init__(self) -> None:
        try:
            self._msgpack: types.ModuleType = importlib.import_module("msgpack")
        except ImportError as exc:
            raise ConfigError(
                "serializer='msgpack' needs the msgpack package: pip install msgpack"
            ) from exc

    def dumps(self, obj: Payload) -> bytes:
        """Encode ``obj`` as MessagePack.

        :param obj: a msgpack-compatible value.
        :returns: the encoded bytes.
        :raises LocalProtocolError: when ``obj`` cannot be encoded.
        """
        try:
            return bytes(self._msgpack.packb(obj, use_bin_type=True))
        except (TypeError, ValueError, OverflowError) as exc:
            raise LocalProtocolError(f"cannot encode payload as msgpack: {exc}") from exc

    def loads(self, data: str | bytes) -> Payload:
        """Decode MessagePack bytes.

        :returns: the decoded value.
        :raises RemoteProtocolError: on invalid data.
        """
        if not isinstance(data, bytes):
            raise RemoteProtocolError("expected a binary message in msgpack mode")
        errors = (ValueError, TypeError, RecursionError, self._msgpack.UnpackException)
        try:
            return self._msgpack.unpackb(data, raw=False, strict_map_key=True)
        except errors as exc:
            raise RemoteProtocolError(f"invalid msgpack payload: {exc}") from exc


def get_serializer(
    name_or_obj: str | Serializer = "default", json_module: JSONModule | None = None
) -> Serializer:
    """Resolve the ``serializer`` option.

    :param name_or_obj: ``'default'`` (or ``'json'``), ``'msgpack'``, or an object
        implementing :class:`Serializer`.
    :param json_module: custom JSON module for the default serializer.
    :returns: a serializer instance.
    :raises ConfigError: for an unknown name or a missing optional dependency.
    """
    if isinstance(name_or_obj, str):
        if name_or_obj in ("default", "json"):
            return JSONSerializer(json_module)
        if name_or_obj == "msgpack":
            return MsgpackSerializer()
        raise ConfigError(f"unknown serializer {name_or_obj!r}")
    if isinstance(name_or_obj, Serializer):
        return name_or_obj
    raise ConfigError(
        "serializer must be 'default', 'msgpack' or an object with name, "
        "whole_packet, dumps() and loads()"
    )
