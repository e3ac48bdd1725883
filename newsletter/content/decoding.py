"""A response body's content codings (gzip, deflate) undone a bounded piece at a time.

httpx decodes a whole network chunk at once, so `Content-Encoding: gzip, gzip` can turn
a few kilobytes on the wire into gigabytes before anyone counts them. Here every layer
gives out at most `PIECE_BYTES` at a time and every layer's output is counted, so the
cap holds for what is produced, not only for what arrived.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

# At most this many codings on one body; a feed needs one at most.
MAX_CODINGS = 2
PIECE_BYTES = 64 * 1024
ACCEPT_ENCODING = "gzip, deflate"

_GZIP = frozenset({"gzip", "x-gzip"})
_DEFLATE = frozenset({"deflate"})
_IGNORED = frozenset({"", "identity"})
# Codings we know but do not decode (and do not ask for).
_UNSUPPORTED = frozenset({"br", "zstd", "compress", "x-compress"})


class CodingError(ValueError):
    """The body's Content-Encoding cannot be undone; the message says why, in one line."""


class DecodedTooLarge(CodingError):
    """A layer of decoding gave out more than the limit."""


def content_codings(header: str | None) -> list[str]:
    """The codings to undo, in the order they were applied; CodingError if refused.

    A token we do not know at all is passed over, as httpx did: servers put charsets
    and other stray words in this header, over bodies that are plain.
    """
    tokens = [token.strip().lower() for token in (header or "").split(",")]
    codings = []
    for token in tokens:
        if token in _UNSUPPORTED:
            raise CodingError(f"unsupported Content-Encoding {token!r}")
        if token in _GZIP or token in _DEFLATE:
            codings.append(token)
    if len(codings) > MAX_CODINGS:
        raise CodingError(
            f"refused: {len(codings)} stacked content codings ({header}); "
            f"at most {MAX_CODINGS} are accepted"
        )
    return codings


def _inflater(coding: str, *, zlib_header: bool = True) -> Any:
    if coding in _GZIP:
        return zlib.decompressobj(zlib.MAX_WBITS | 16)
    return zlib.decompressobj(zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS)


def _undo(
    pieces: Iterable[bytes], coding: str, *, limit: int, tick: Callable[[], None]
) -> Iterator[bytes]:
    """`pieces` with one coding undone, PIECE_BYTES at most at a time, `limit` in all."""
    inflater = _inflater(coding)
    started = False
    size = 0

    def counted(out: bytes) -> bytes:
        nonlocal size
        size += len(out)
        if size > limit:
            raise DecodedTooLarge(f"more than {limit} bytes once decoded")
        tick()
        return out

    for piece in pieces:
        data = piece
        while data and not inflater.eof:
            try:
                out = inflater.decompress(data, PIECE_BYTES)
            except zlib.error as exc:
                # "deflate" is meant to be zlib-wrapped, but some servers send it raw.
                if coding in _DEFLATE and not started:
                    inflater = _inflater(coding, zlib_header=False)
                    started = True
                    continue
                raise CodingError(f"the {coding} body is corrupt: {exc}") from exc
            started = True
            data = inflater.unconsumed_tail
            if out:
                yield counted(out)
        if inflater.eof:
            return  # what follows the stream's end is not part of it
    while out := inflater.decompress(b"", PIECE_BYTES):
        yield counted(out)


def decoded(
    pieces: Iterable[bytes], codings: list[str], *, limit: int, tick: Callable[[], None]
) -> Iterator[bytes]:
    """`pieces` with `codings` undone, last applied first. Each layer gives out `limit`
    bytes at most (DecodedTooLarge beyond), and calls `tick` (a deadline check) per piece.

    Every layer is bounded, not only the last: a gzip header may carry a comment of any
    length, which the next layer eats without giving out a byte.
    """
    stream: Iterable[bytes] = pieces
    for coding in reversed(codings):
        stream = _undo(stream, coding, limit=limit, tick=tick)
    return iter(stream)
