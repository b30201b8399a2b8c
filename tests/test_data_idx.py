"""IDX files: round trips, and a clear error for every way a file can be malformed."""

import gzip
import os
import time
import tracemalloc
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from minigan.data import IDXError, read_idx, write_idx
from minigan.data.idx import OversizedGzipError, TruncatedGzipError, decompress_idx

IDX_DTYPES = ["uint8", "int8", ">i2", "<i2", ">i4", "<i4", ">f4", "<f4", ">f8", "<f8"]


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", IDX_DTYPES)
def test_round_trip_keeps_values_shape_and_dtype(tmp_path, suffix, dtype):
    array = (np.arange(2 * 3 * 5) - 7).reshape(2, 3, 5).astype(dtype)
    path = tmp_path / f"array.idx{suffix}"
    write_idx(path, array)
    loaded = read_idx(path)
    np.testing.assert_array_equal(loaded, array)
    assert loaded.shape == (2, 3, 5)
    assert loaded.dtype == np.dtype(dtype).newbyteorder("=")
    assert loaded.flags.writeable


@settings(max_examples=30, deadline=None)
@given(array=hnp.arrays(np.uint8, hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=6)),
       compress=st.booleans())
def test_round_trip_any_uint8_shape(tmp_path_factory, array, compress):
    path = tmp_path_factory.mktemp("idx") / ("a.gz" if compress else "a")
    write_idx(path, array)
    loaded = read_idx(path)
    assert loaded.shape == array.shape
    np.testing.assert_array_equal(loaded, array)


def test_raw_file_has_the_documented_layout(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    write_idx(path, np.array([3, 1, 4], dtype=np.uint8))
    assert path.read_bytes() == bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 3, 1, 4])


def test_compression_is_decided_by_content_not_name(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    raw, gzipped = tmp_path / "raw.gz", tmp_path / "gzipped"
    write_idx(tmp_path / "a", array)
    (tmp_path / "a").rename(raw)  # raw bytes under a .gz name
    write_idx(tmp_path / "b.gz", array)
    (tmp_path / "b.gz").rename(gzipped)  # gzip bytes under a plain name
    np.testing.assert_array_equal(read_idx(raw), array)
    np.testing.assert_array_equal(read_idx(gzipped), array)


def test_gzip_output_is_reproducible(tmp_path):
    array = np.arange(100, dtype=np.uint8)
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "b.gz", array)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


def test_write_replaces_the_file_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "a.gz"
    write_idx(path, np.zeros(5, np.uint8))
    write_idx(path, np.ones((2, 2), np.uint8))
    np.testing.assert_array_equal(read_idx(path), np.ones((2, 2), np.uint8))
    assert [p.name for p in tmp_path.iterdir()] == ["a.gz"]


def test_write_rejects_a_dtype_idx_cannot_store(tmp_path):
    with pytest.raises(IDXError, match=r"IDX cannot store dtype int64; convert to one of uint8, int8"):
        write_idx(tmp_path / "a", np.zeros(3, np.int64))
    assert list(tmp_path.iterdir()) == []


def test_write_rejects_a_scalar(tmp_path):
    with pytest.raises(IDXError, match="at least one dimension"):
        write_idx(tmp_path / "a", np.uint8(3))


@pytest.mark.parametrize("magic, shown", [
    (bytes([1, 0, 0x08, 1]), "01 00 08 01"),
    (bytes([0, 0, 0x07, 1]), "00 00 07 01"),  # no such type code
    (b"\x89PNG", "89 50 4e 47"),
])
def test_wrong_magic_number(tmp_path, magic, shown):
    path = tmp_path / "bad"
    path.write_bytes(magic + bytes([0, 0, 0, 1, 7]))
    with pytest.raises(IDXError) as info:
        read_idx(path)
    assert str(info.value) == (f"wrong magic number in {path}: got {shown}, expected "
                               f"00 00 <type code 08|09|0b|0c|0d|0e> <number of dims>; is it an IDX file?")


@pytest.mark.parametrize("content, start, kind", [
    (b"<!DOCTYPE html>\n<html lang=en><body>404</body></html>", "<!DOCTYPE html", "an HTML page"),
    (b"\n  <HTML><body>Service unavailable</body></HTML>", "<HTML><body>Se", "an HTML page"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:0fa7", "version https:", "text"),
])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_text_is_named_as_text_not_as_a_bad_magic_number(tmp_path, content, start, kind, suffix):
    """An error page saved by a download, or a Git LFS pointer, is said to be what it is."""
    path = tmp_path / f"train-images-idx3-ubyte{suffix}"
    path.write_bytes(gzip.compress(content) if suffix else content)
    with pytest.raises(IDXError) as info:
        read_idx(path)
    assert str(info.value) == f"{path} starts with '{start}' — {kind}, not an IDX file"


def test_empty_file(tmp_path):
    path = tmp_path / "empty"
    path.write_bytes(b"")
    with pytest.raises(IDXError, match="wrong magic number .* got an empty file"):
        read_idx(path)


def test_zero_dimensions(tmp_path):
    path = tmp_path / "scalar"
    path.write_bytes(bytes([0, 0, 0x08, 0, 42]))
    with pytest.raises(IDXError, match="declares 0 dimensions"):
        read_idx(path)


def test_header_shorter_than_its_dims(tmp_path):
    path = tmp_path / "short-header"
    path.write_bytes(bytes([0, 0, 0x08, 3, 0, 0, 0, 2, 0, 0]))  # 3 dims need a 16-byte header
    with pytest.raises(IDXError, match=r"is truncated: its magic number declares 3 dimensions, "
                                       r"a 16-byte header, but it holds only 10 bytes"):
        read_idx(path)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_truncated_data(tmp_path, suffix):
    """A file cut inside its data: the header's sizes and the bytes present disagree."""
    write_idx(tmp_path / "full", np.zeros((4, 28, 28), np.uint8))
    content = (tmp_path / "full").read_bytes()[:-100]
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(gzip.compress(content) if suffix else content)
    with pytest.raises(IDXError) as info:
        read_idx(path)
    assert str(info.value) == (f"{path} is truncated: its header says uint8 of shape (4, 28, 28), "
                               f"3136 bytes of data, but it holds 3036")


def test_dims_that_disagree_with_the_data(tmp_path):
    """A header that claims a smaller array than the file holds is an error too, not silently cut."""
    path = tmp_path / "wrong-dims"
    path.write_bytes(bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(10))
    with pytest.raises(IDXError, match=r"has 4 bytes more than its header describes \(uint8 of shape \(2, 3\)"):
        read_idx(path)


def test_multibyte_dims_count_bytes_not_elements(tmp_path):
    path = tmp_path / "int32"
    path.write_bytes(bytes([0, 0, 0x0C, 1, 0, 0, 0, 3]) + bytes(8))  # 3 int32 need 12 bytes
    with pytest.raises(IDXError, match=r"int32 of shape \(3,\), 12 bytes of data, but it holds 8"):
        read_idx(path)


@pytest.mark.parametrize("keep", [2, 5, 12, 40, -8, -1])
def test_truncated_gzip_stream(tmp_path, keep):
    """Cut anywhere, from inside the gzip header to inside the trailer's checksum."""
    write_idx(tmp_path / "full.gz", np.arange(200, dtype=np.uint8))
    data = (tmp_path / "full.gz").read_bytes()
    path = tmp_path / "cut.gz"
    path.write_bytes(data[:keep])
    with pytest.raises(TruncatedGzipError, match=f"^{path} is truncated: its gzip stream ends early") as info:
        read_idx(path)
    assert 0 <= info.value.decompressed_bytes <= 4 + 4 + 200
    if keep < 0:  # only the trailer is missing: all the content came out
        assert info.value.decompressed_bytes == 208


def test_corrupt_gzip_stream(tmp_path):
    write_idx(tmp_path / "full.gz", np.arange(200, dtype=np.uint8))
    data = bytearray((tmp_path / "full.gz").read_bytes())
    data[-6] ^= 0xFF  # inside the CRC-32 of the trailer
    path = tmp_path / "corrupt.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(IDXError, match=f"^{path} is a corrupt gzip stream: .*incorrect data check"):
        read_idx(path)


def test_concatenated_gzip_members_are_read_whole(tmp_path):
    """gzip allows a file made of several members; `cat a.gz b.gz` is a valid gzip file."""
    write_idx(tmp_path / "whole", np.arange(50, dtype=np.uint8))
    content = (tmp_path / "whole").read_bytes()
    path = tmp_path / "two-members.gz"
    path.write_bytes(gzip.compress(content[:20]) + gzip.compress(content[20:]))
    np.testing.assert_array_equal(read_idx(path), np.arange(50, dtype=np.uint8))


# --- bounded inflating: a gzip bomb costs no more memory than the file it claims to be --------------


def gzip_of_zeros(path, header: bytes, zeros: int, piece: int = 1 << 20) -> None:
    """A gzip file of `header` and then `zeros` zero bytes, written piece by piece (never held whole)."""
    stream = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    with open(path, "wb") as f:
        f.write(stream.compress(header))
        for start in range(0, zeros, piece):
            f.write(stream.compress(bytes(min(piece, zeros - start))))
        f.write(stream.flush())


@pytest.mark.parametrize("header, message", [
    # 10 labels declared, 200 MB inflated: stopped just past the 10 bytes (plus a little)
    (b"\x00\x00\x08\x01" + (10).to_bytes(4, "big"),
     r"inflates to more than 65554 bytes, its header describes 18 bytes"),
    # no IDX header at all: stopped after the first piece, and called what it is
    (b"", r"wrong magic number in .*: got 00 00 00 00"),
])
def test_a_gzip_bomb_stops_early_with_one_line(tmp_path, header, message):
    path = tmp_path / "bomb.gz"
    gzip_of_zeros(path, header, 200_000_000)
    assert path.stat().st_size < 300_000
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(IDXError, match=message) as info:
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "\n" not in str(info.value) and str(path) in str(info.value)
    assert peak < 2**20, peak  # 200 MB inflated in full would show here
    assert time.perf_counter() - started < 5


def test_a_gzip_bomb_is_stopped_at_the_callers_limit(tmp_path):
    path = tmp_path / "bomb.gz"
    gzip_of_zeros(path, b"\x00\x00\x08\x01" + (300_000_000).to_bytes(4, "big"), 50_000_000)
    with pytest.raises(OversizedGzipError, match=r"inflates to more than 1000 bytes") as info:
        decompress_idx(path.read_bytes(), str(path), limit=1000)
    assert info.value.limit == 1000


def test_inflating_in_pieces_keeps_multi_member_files_and_large_arrays(tmp_path):
    array = np.arange(3 * 1024 * 1024, dtype=np.uint8).reshape(3, 1024, 1024)  # larger than one piece
    write_idx(tmp_path / "a.gz", array)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), array)
    content = gzip.decompress((tmp_path / "a.gz").read_bytes())
    (tmp_path / "b.gz").write_bytes(gzip.compress(content[:1000]) + gzip.compress(content[1000:]) + bytes(8))
    np.testing.assert_array_equal(read_idx(tmp_path / "b.gz"), array)


def test_a_fifo_is_refused_without_being_opened(tmp_path):
    fifo = tmp_path / "images.idx"
    os.mkfifo(fifo)
    with pytest.raises(IDXError, match=rf"^{fifo} is a FIFO \(named pipe\), not a regular file$"):
        read_idx(fifo)  # opening it would block until a writer came
