"""The IDX file format that MNIST ships in, read and written with NumPy.

An IDX file is a 4-byte magic number, one big-endian uint32 per dimension, then the array's
bytes in C order, big-endian:

    00 00 <type code> <number of dims>   <dim 0> ... <dim n-1>   <data>

Files are often gzipped; `read_idx` tells by the gzip magic bytes, never by the file name, and
inflates them piece by piece, stopping once the output passes what the header says to expect: a
small file that inflates to gigabytes (a gzip bomb) costs no more memory than a valid one.
Every check fails with an `IDXError` whose message names the file and what is wrong with it.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_bytes, file_problem

# The type code (third magic byte) and the big-endian dtype its data is stored in.
IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
# (kind, itemsize) -> type code, so that an array in either byte order can be written.
_TYPE_CODES = {(dtype.kind, dtype.itemsize): code for code, dtype in IDX_DTYPES.items()}
GZIP_MAGIC = b"\x1f\x8b"
# Inflated per step, and the most any IDX file is inflated to when its header cannot bound it.
INFLATE_CHUNK = 1 << 20
INFLATE_CAP = 1 << 32
# Bytes past the header's size still inflated, so that a little too much is reported exactly.
INFLATE_SLACK = 1 << 16
HEADER_MAX = 4 + 4 * 255  # the magic number and 255 dimensions


class IDXError(ValueError):
    """A file that is not a well-formed IDX file (or not a complete gzip stream of one)."""


class TruncatedGzipError(IDXError):
    """A gzip stream that ends early.

    It carries how many bytes did decompress, so that a caller who knows the expected size
    (the MNIST loader) can say "expected 47040016 bytes, got 1234".
    """

    def __init__(self, source: str, decompressed_bytes: int):
        super().__init__(f"{source} is truncated: its gzip stream ends early, "
                         f"after {decompressed_bytes} decompressed bytes")
        self.decompressed_bytes = decompressed_bytes


class OversizedGzipError(IDXError):
    """A gzip stream that inflates past a bound (the size its IDX header gives, or the caller's);
    inflating stopped there. It carries the bound."""

    def __init__(self, message: str, limit: int):
        super().__init__(message)
        self.limit = limit


def read_idx(path) -> np.ndarray:
    """The array stored in an IDX file, raw or gzipped, as a writable native-endian array."""
    path = Path(path)
    problem = file_problem(path)  # a FIFO would block the read below
    if problem:
        raise IDXError(f"{path} {problem}")
    return parse_idx(decompress_idx(path.read_bytes(), str(path)), str(path))


def write_idx(path, array) -> None:
    """Store `array` as an IDX file, gzipped when `path` ends in .gz.

    The file is replaced atomically, so a reader never sees a half-written one.
    """
    path = Path(path)
    array = np.asarray(array)
    code = _TYPE_CODES.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        raise IDXError(f"write_idx: IDX cannot store dtype {array.dtype}; convert to one of "
                       f"{', '.join(dtype.name for dtype in IDX_DTYPES.values())} first")
    if array.ndim == 0:
        raise IDXError("write_idx: IDX needs an array with at least one dimension, got a scalar")
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    content = header + array.astype(IDX_DTYPES[code], copy=False).tobytes()
    if path.name.endswith(".gz"):
        # mtime=0 so that the same array always gives the same bytes (and the same checksum).
        content = gzip.compress(content, mtime=0)
    atomic_write_bytes(path, content)


def decompress_idx(data: bytes, source: str, limit: int | None = None) -> bytes:
    """A file's IDX content: its bytes gunzipped if they start with the gzip magic, else as they are.

    Inflates at most `limit` bytes (default: what the content's own IDX header describes, plus a
    little, else INFLATE_CAP) and raises OversizedGzipError past that. `source` names the file in
    error messages.
    """
    if not data.startswith(GZIP_MAGIC):
        return data
    out = bytearray()
    bound = limit
    while data:
        stream = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # 16+: expect a gzip header
        pending = data
        while not stream.eof:
            if bound is None:
                bound = _bound_from_header(out)
                if bound is None and len(out) >= HEADER_MAX:  # longer than any IDX header, and none
                    return bytes(out)  # parse_idx says what it is from these first bytes
            room = (INFLATE_CAP if bound is None else bound) - len(out)
            if room < 0:
                raise _oversized(source, out, bound)
            # Until the header is read, no more than a header's length (it gives the bound); then one
            # byte past the room, so that passing the bound is seen.
            size = HEADER_MAX - len(out) if bound is None and len(out) < HEADER_MAX else min(INFLATE_CHUNK, room + 1)
            try:
                piece = stream.decompress(pending, size)
            except zlib.error as err:  # also a CRC or length mismatch in the gzip trailer
                raise IDXError(f"{source} is a corrupt gzip stream: {err}") from None
            out += piece
            pending = stream.unconsumed_tail
            if not piece and not pending:
                break
        if bound is not None and len(out) > bound:
            raise _oversized(source, out, bound)
        if not stream.eof:
            raise TruncatedGzipError(source, len(out))
        # gzip allows several members back to back, and zero padding after the last one.
        data = stream.unused_data.lstrip(b"\0")
    return bytes(out)


def _bound_from_header(content: bytes) -> int | None:
    """The size an IDX header at the start of `content` describes, plus INFLATE_SLACK; None until
    the whole header is there, or when it is no IDX header."""
    if not has_idx_magic(content) or content[3] == 0 or len(content) < 4 + 4 * content[3]:
        return None
    shape = np.frombuffer(bytes(content[4:4 + 4 * content[3]]), ">u4").tolist()
    size = 4 + 4 * content[3] + math.prod(shape) * IDX_DTYPES[content[2]].itemsize
    return min(size + INFLATE_SLACK, INFLATE_CAP)


def _oversized(source: str, out: bytes, bound: int | None) -> OversizedGzipError:
    limit = INFLATE_CAP if bound is None else bound
    header = _bound_from_header(out)
    why = (f"its header describes {header - INFLATE_SLACK} bytes" if header is not None and header == bound
           else "more than is ever expected of it")
    return OversizedGzipError(f"{source} inflates to more than {limit} bytes, {why}; inflating stopped there "
                              f"(a damaged file or a gzip bomb)", limit)


def has_idx_magic(content: bytes) -> bool:
    """Whether `content` starts with a valid IDX magic number: 00 00 <known type code> <dims>."""
    return len(content) >= 4 and content[0] == 0 and content[1] == 0 and content[2] in IDX_DTYPES


def describe_text(content: bytes) -> str | None:
    """"starts with '<!DOCTYPE html' — an HTML page, not an IDX file" for content that is text,
    else None. A download that saved an error page, or a README under a data file's name, is
    the usual way a non-IDX file turns up, and its first characters say so better than bytes."""
    head = content[:256]
    # Printable ASCII, whitespace, or bytes of UTF-8 text; binary formats have control bytes early.
    if not head or not all(byte >= 32 and byte != 127 or byte in b"\t\n\r" for byte in head):
        return None
    start = head.lstrip()
    first = start.split(b"\n")[0].decode("utf-8", "replace")[:14].rstrip()
    is_html = start[:14].lower().startswith((b"<!doctype html", b"<html"))
    return f"starts with {first!r} — {'an HTML page' if is_html else 'text'}, not an IDX file"


def parse_idx(content: bytes, source: str) -> np.ndarray:
    """The array in uncompressed IDX `content`, after checking its magic number and sizes.

    `source` names the file in error messages.
    """
    magic = content[:4]
    if not has_idx_magic(content):
        text = describe_text(content)
        if text is not None:
            raise IDXError(f"{source} {text}")
        codes = "|".join(f"{code:02x}" for code in IDX_DTYPES)
        raise IDXError(f"wrong magic number in {source}: got {magic.hex(' ') or 'an empty file'}, "
                       f"expected 00 00 <type code {codes}> <number of dims>; is it an IDX file?")
    dtype, ndim = IDX_DTYPES[magic[2]], magic[3]
    if ndim == 0:
        raise IDXError(f"{source} declares 0 dimensions in its magic number; an IDX file has at least one")

    data_start = 4 + 4 * ndim
    if len(content) < data_start:
        raise IDXError(f"{source} is truncated: its magic number declares {ndim} dimensions, "
                       f"a {data_start}-byte header, but it holds only {len(content)} bytes")
    shape = tuple(int(size) for size in np.frombuffer(content, ">u4", count=ndim, offset=4))

    expected, found = math.prod(shape) * dtype.itemsize, len(content) - data_start
    if found < expected:
        raise IDXError(f"{source} is truncated: its header says {dtype.name} of shape {shape}, "
                       f"{expected} bytes of data, but it holds {found}")
    if found > expected:
        raise IDXError(f"{source} has {found - expected} bytes more than its header describes "
                       f"({dtype.name} of shape {shape}, {expected} bytes of data)")
    array = np.frombuffer(content, dtype, count=math.prod(shape), offset=data_start)
    # astype copies: the result is writable (frombuffer on bytes is not) and in native byte order.
    return array.reshape(shape).astype(dtype.newbyteorder("="))


