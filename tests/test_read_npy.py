"""`musicbench.fsutil.read_npy`, the one reader of untrusted .npy files (run folders, estimate
folders): real files crafted byte by byte; nothing is allocated before the header is checked."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest

from musicbench.errors import MusicbenchError
from musicbench.fsutil import NpyError, read_npy


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def forged(shape: tuple[int, ...], descr: str = "<f8", size: int = 192) -> bytes:
    """A `size`-byte .npy file whose header claims `shape` of `descr` whatever follows it."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": descr, "fortran_order": False, "shape": shape})
    return header.getvalue().ljust(size, b"\0")


def test_good_arrays_read_as_numpy_loads_them(tmp_path):
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    for variant in (array, np.asfortranarray(array), array.astype(">f8"), array.astype(np.int16), array[:0]):
        (tmp_path / "a.npy").write_bytes(npy_bytes(variant))
        for source in (tmp_path / "a.npy", npy_bytes(variant)):
            got = read_npy(source, max_bytes=1 << 20, ndim=3)
            assert got.dtype == variant.dtype and got.shape == variant.shape and np.array_equal(got, variant)
            assert got.flags.writeable
            got[...] = 0  # the caller's own copy


def test_a_header_that_lies_is_refused_before_anything_is_allocated(tmp_path):
    """192 bytes claiming (10**7, 10**7) float64: np.load tries to allocate 728 TiB (MemoryError)."""
    path = tmp_path / "lie.npy"
    path.write_bytes(forged((10**7, 10**7)))
    assert path.stat().st_size == 192
    with pytest.raises(MemoryError):
        np.load(path, allow_pickle=False)
    message = ("lie.npy has a header that claims shape (10000000, 10000000) of float64 (800000000000000 bytes) "
               "but 64 bytes follow it; the file is damaged or forged, write it again with numpy.save")
    with pytest.raises(NpyError) as caught:
        read_npy(path, max_bytes=1 << 40, name="lie.npy")
    assert str(caught.value) == message and "\n" not in str(caught.value)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, MusicbenchError)
    with pytest.raises(NpyError, match="^the .npy data has a header that claims"):
        read_npy(forged((10**7, 10**7)), max_bytes=1 << 40)
    with pytest.raises(NpyError, match=r"claims shape \(3, -1\)|impossible shape \(3, -1\)"):
        read_npy(forged((3, -1)), max_bytes=1 << 40)


def test_object_arrays_and_other_kinds_are_refused(tmp_path):
    pickled = npy_bytes(np.array([{"a": 1}], dtype=object))
    with pytest.raises(NpyError, match=r"^h\.npy holds Python objects \(a pickle\), not numbers"):
        read_npy(pickled, max_bytes=1 << 20, name="h.npy")
    for array, kind in ((np.array(["text"]), "<U4"), (np.array([1 + 2j]), "complex128"),
                        (np.zeros(2, dtype=[("a", "i4"), ("b", "f8")]), "[('a', '<i4'), ('b', '<f8')]")):
        with pytest.raises(NpyError, match="holds " + kind.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")
                           .replace("]", r"\]") + " values, not bool, integer, unsigned integer or float numbers"):
            read_npy(npy_bytes(array), max_bytes=1 << 20)
    with pytest.raises(NpyError, match="holds int64 values, not float numbers"):
        read_npy(npy_bytes(np.arange(3)), max_bytes=1 << 20, kinds="f")
    with pytest.raises(NpyError, match=r"has shape \(3,\): 1 dimension\(s\), not 2"):
        read_npy(npy_bytes(np.arange(3.0)), max_bytes=1 << 20, ndim=2)


def test_truncated_padded_and_foreign_files_are_refused(tmp_path):
    good = npy_bytes(np.ones((3, 4), dtype=np.float32))
    with pytest.raises(NpyError, match=r"claims shape \(3, 4\) of float32 \(48 bytes\) but 47 bytes follow it"):
        read_npy(good[:-1], max_bytes=1 << 20)
    with pytest.raises(NpyError, match="but 49 bytes follow it"):
        read_npy(good + b"x", max_bytes=1 << 20)
    for data in (good[:20], b"", b"PK\x03\x04 a zip, not an array" * 4, b"\x93NUMPY\x07\x00" + good[8:]):
        with pytest.raises(NpyError, match=r"^x\.npy is not a numpy \.npy array \("):
            read_npy(data, max_bytes=1 << 20, name="x.npy")


def test_too_big_is_refused_at_the_header(tmp_path):
    path = tmp_path / "big.npy"
    np.save(path, np.zeros((64, 64)))
    assert read_npy(path, max_bytes=64 * 64 * 8).shape == (64, 64)
    with pytest.raises(NpyError, match=r"big\.npy holds shape \(64, 64\) of float64: 32768 bytes, over the 32767 allowed"):
        read_npy(path, max_bytes=64 * 64 * 8 - 1)


def test_symlinks_special_files_and_missing_files_are_refused(tmp_path):
    target = tmp_path / "real.npy"
    np.save(target, np.zeros(3))
    os.symlink(target, tmp_path / "link.npy")
    with pytest.raises(NpyError, match=r"link\.npy cannot be opened \(a symlink\)"):
        read_npy(tmp_path / "link.npy", max_bytes=1 << 20)
    os.symlink("b.npy", tmp_path / "a.npy")
    os.symlink("a.npy", tmp_path / "b.npy")
    with pytest.raises(NpyError, match=r"a\.npy cannot be opened \(a symlink\)"):
        read_npy(tmp_path / "a.npy", max_bytes=1 << 20)
    os.mkfifo(tmp_path / "fifo.npy")  # opened without blocking, then refused
    with pytest.raises(NpyError, match=r"fifo\.npy is not a regular file"):
        read_npy(tmp_path / "fifo.npy", max_bytes=1 << 20)
    with pytest.raises(NpyError, match=r"is not a regular file"):
        read_npy(tmp_path, max_bytes=1 << 20)
    with pytest.raises(NpyError, match=r"^gone\.npy is missing$"):
        read_npy(tmp_path / "gone.npy", max_bytes=1 << 20, name="gone.npy")
    assert np.array_equal(read_npy(Path(target), max_bytes=24), np.zeros(3))
