"""Filesystem helpers: atomic writes, Parquet tables, paths that never leave the data root and
untrusted ``.npy`` arrays read without trusting their header (`read_npy`)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import math
import os
import stat
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from musicbench.errors import MusicbenchError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it onto `path`, else delete it.

    A reader never sees a half-written `path`: it is either the old file or the complete new one.
    `suffix` keeps the extension on the temporary name (tools such as ffmpeg pick formats by it).
    """
    path = Path(path)
    ensure_writable_dir(path.parent)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.tmp-", suffix=path.suffix if suffix is None else suffix, dir=path.parent
    )
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the final file the usual mode
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically (temporary file, then rename)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 `text` to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def ensure_writable_dir(directory: str | os.PathLike) -> Path:
    """Create `directory` if needed and check that files can be created in it.

    Raises MusicbenchError naming the directory if it cannot be created or written.
    """
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MusicbenchError(
            f"output folder {str(directory)!r} cannot be created ({exc.strerror}); "
            "choose a writable location"
        ) from None
    if not directory.is_dir() or not os.access(directory, os.W_OK | os.X_OK):
        raise MusicbenchError(
            f"output folder {str(directory)!r} is not writable; fix its permissions or choose another"
        )
    return directory


class SymlinkLoopError(MusicbenchError):
    """A path whose symlinks lead back to each other (ELOOP), named by `resolve_in_root`."""


def _loop_error(relative: str | os.PathLike, root: str | os.PathLike) -> SymlinkLoopError:
    return SymlinkLoopError(f"path {os.fspath(relative)!r} under {os.fspath(root)!r} is a symlink loop (its links lead "
                            "back to each other); replace the link with the real file")


def _is_loop(exc: BaseException) -> bool:
    # Path.resolve raises RuntimeError("Symlink loop ...") up to Python 3.12, OSError ELOOP from os.stat
    return isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == errno.ELOOP


def resolve_in_root(root: str | os.PathLike, relative: str | os.PathLike) -> Path:
    """Resolve `relative` under `root`, refusing any path that would leave `root`.

    Absolute paths, `..` components and symlinks pointing outside are all rejected with
    a MusicbenchError, since manifest paths are untrusted input; a symlink loop on the way is a
    `SymlinkLoopError` (a MusicbenchError) naming the path, whatever Python's version.
    """
    rel = Path(relative)
    if rel.is_absolute() or any(part == ".." for part in rel.parts) or str(relative) == "":
        raise MusicbenchError(
            f"path {str(relative)!r} must be relative to the data root {str(root)!r} without '..'"
        )
    try:
        root_resolved = Path(root).resolve()
    except (RuntimeError, OSError) as exc:
        if _is_loop(exc):
            raise SymlinkLoopError(f"folder {os.fspath(root)!r} is a symlink loop (its links lead back to each other); "
                                  "point it at a real folder") from None
        raise MusicbenchError(f"folder {os.fspath(root)!r} cannot be resolved ({exc}); check that it exists") from None
    try:
        candidate = (root_resolved / rel).resolve()
    except (RuntimeError, OSError) as exc:
        if _is_loop(exc):
            raise _loop_error(relative, root) from None
        raise MusicbenchError(f"path {str(relative)!r} under {os.fspath(root)!r} cannot be resolved ({exc})") from None
    try:
        os.stat(candidate)  # Python 3.13 resolves a loop without raising: ELOOP shows here
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _loop_error(relative, root) from None
        # missing (a file still to be written) or unreadable: the caller's own open says which
    if candidate != root_resolved and root_resolved not in candidate.parents:
        raise MusicbenchError(f"path {str(relative)!r} escapes the data root {str(root)!r}")
    return candidate


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def read_text(path: str | os.PathLike, what: str, hint: str = "") -> str:
    """The UTF-8 text of a file, or MusicbenchError ``cannot read WHAT 'path': reason[; hint]``."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else exc.strerror
        raise MusicbenchError(f"cannot read {what} {os.fspath(path)!r}: {why}" + (f"; {hint}" if hint else "")) from None


def write_parquet(
    table: pd.DataFrame | pa.Table, path: str | os.PathLike, *, compression: str = "zstd", statistics: bool = False,
    arrow_schema: bool = True,
) -> None:
    """Write `table` as a Parquet file at `path`, atomically; the bytes depend only on the values.

    A DataFrame is written without its index and without pandas metadata; an Arrow table as
    given. `statistics`: per-column min/max in the file; `arrow_schema`: the Arrow schema in the
    file's metadata.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False).replace_schema_metadata(None)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression=compression, write_statistics=statistics, store_schema=arrow_schema)


def read_parquet(path: str | os.PathLike, columns: Sequence[str], what: str, hint: str) -> pd.DataFrame:
    """The Parquet file at `path` as a DataFrame holding at least `columns`, or MusicbenchError
    ``cannot read WHAT 'path' (reason); HINT`` / ``WHAT 'path' lacks column(s) ...; HINT``."""
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a missing, damaged or foreign file
        raise MusicbenchError(f"cannot read {what} {os.fspath(path)!r} ({exc}); {hint}") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise MusicbenchError(f"{what} {os.fspath(path)!r} lacks column(s) {', '.join(missing)}; {hint}")
    return frame


def read_untrusted_parquet(path: str | os.PathLike, columns: Sequence[str], *, max_bytes: int, max_rows: int,
                           max_memory: int, name: str | None = None) -> pd.DataFrame:
    """The `columns` of an untrusted Parquet file that it has (no other column is read), or
    `UntrustedFileError` (`MissingFileError` when absent) naming it: read once as a regular file of at
    most `max_bytes` (`read_regular_file`); refused when its metadata claims more than `max_rows`
    rows, or when those columns would take more than `max_memory` bytes decoded: as the metadata
    says, and for text columns as their values say (they are read as dictionaries first, so that a
    long value repeated on every row is measured before it is written out)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    label = name or os.fspath(path)
    data = read_regular_file(path, max_bytes=max_bytes, name=label)
    try:
        parquet = pq.ParquetFile(io.BytesIO(data))
        meta = parquet.metadata
        if meta.num_rows > max_rows:
            raise UntrustedFileError(f"{label} has {meta.num_rows} rows, at most {max_rows}")
        present = [column for column in columns if column in parquet.schema_arrow.names]
        chosen = [index for index in range(meta.num_columns) if meta.schema.column(index).path.split(".")[0] in present]
        decoded = sum(meta.row_group(group).column(index).total_uncompressed_size
                      for group in range(meta.num_row_groups) for index in chosen)
        text = [meta.schema.column(index).path for index in chosen if meta.schema.column(index).physical_type == "BYTE_ARRAY"]
        if decoded <= max_memory:
            table = pq.read_table(io.BytesIO(data), columns=present, read_dictionary=text)
            for column in text:
                for chunk in table.column(column).chunks:
                    if pa.types.is_dictionary(chunk.type) and len(chunk):
                        lengths = pc.binary_length(chunk.dictionary).to_numpy(zero_copy_only=False)
                        lengths = np.nan_to_num(lengths.astype(np.float64))
                        indices = chunk.indices.fill_null(0).to_numpy(zero_copy_only=False)
                        decoded += int(lengths[indices].sum()) if len(lengths) else 0
    except UntrustedFileError:
        raise
    except Exception as exc:  # pyarrow raises several types for a damaged or foreign file
        raise UntrustedFileError(f"{label} is not a readable Parquet file ({type(exc).__name__})") from None
    if decoded > max_memory:
        raise UntrustedFileError(f"{label} would take {decoded} bytes decoded, over the {max_memory} allowed")
    try:
        for column in text:
            if pa.types.is_dictionary(table.schema.field(column).type):
                plain_type = table.schema.field(column).type.value_type
                table = table.set_column(table.schema.get_field_index(column), column, pc.cast(table.column(column), plain_type))
        return table.to_pandas()
    except Exception as exc:
        raise UntrustedFileError(f"{label} is not a readable Parquet file ({type(exc).__name__})") from None


# ------------------------------------------------------------------------------------------ .npy arrays

_KIND_NAMES = {"b": "bool", "i": "integer", "u": "unsigned integer", "f": "float", "c": "complex"}


class UntrustedFileError(MusicbenchError, ValueError):
    """An untrusted file that `read_regular_file` refuses: the message is one line naming it and saying
    why (a symlink, not a regular file, over its size cap, unreadable)."""


class MissingFileError(UntrustedFileError):
    """The untrusted file is not there at all."""


class NpyError(UntrustedFileError):
    """An untrusted ``.npy`` file or buffer that `read_npy` refuses: the message is one line naming it
    and saying what is wrong (missing, a symlink, not a regular file, not .npy, Python objects, a
    dtype or number of dimensions not asked for, a header that disagrees with the bytes after it,
    more than the bytes allowed)."""


@contextlib.contextmanager
def _open_regular(path: str | os.PathLike, label: str, error: type[UntrustedFileError] = UntrustedFileError,
                  missing: type[UntrustedFileError] = MissingFileError) -> Iterator[tuple[Any, os.stat_result]]:
    """An untrusted file opened for reading with O_NOFOLLOW and without blocking, and its stat: it must
    be a regular file (not a symlink, FIFO or device); else `error` (`missing` when it is absent)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise missing(f"{label} is missing") from None
    except OSError as exc:
        raise error(f"{label} cannot be opened ({'a symlink' if os.path.islink(path) else exc.strerror})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise error(f"{label} is not a regular file")
    with os.fdopen(fd, "rb") as handle:
        try:
            yield handle, info
        except OSError as exc:  # an I/O error while reading
            raise error(f"{label} cannot be read ({exc.strerror or exc})") from None


def read_regular_file(path: str | os.PathLike, *, max_bytes: int, name: str | None = None) -> bytes:
    """The bytes of an untrusted file, read once: opened with O_NOFOLLOW and without blocking, it must
    be a regular file (not a symlink, FIFO or device) of at most `max_bytes`; else `UntrustedFileError`
    (`MissingFileError` when it is absent) naming it (`name`, default the path) with the reason."""
    label = name or os.fspath(path)
    with _open_regular(path, label) as (handle, info):
        if info.st_size > max_bytes:
            raise UntrustedFileError(f"{label} has {info.st_size} bytes, over the {max_bytes} allowed")
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UntrustedFileError(f"{label} grew past {max_bytes} bytes while being read")
    return data


def read_npy(
    source: str | os.PathLike | bytes, *, max_bytes: int, kinds: str = "biuf", ndim: int | None = None,
    name: str | None = None,
) -> np.ndarray:
    """The array of an untrusted ``.npy`` file (a path) or of its bytes, allocated only once its
    header has been checked against what follows it; raises `NpyError` (a MusicbenchError and a
    ValueError) with a one-line reason.

    A path is opened with O_NOFOLLOW and must be a regular file (a symlink, a FIFO or a device is
    refused). Only the header is parsed first (format 1.0 or 2.0): the dtype must be of one of
    `kinds` (numpy kind letters; ``"biuf"``: bool, integer, unsigned, float; never Python objects,
    so never a pickle), the shape must have `ndim` dimensions when given, and
    ``prod(shape) * itemsize`` must equal the bytes that follow the header exactly and be at most
    `max_bytes`. Only then are that many bytes read. Fortran-ordered arrays are returned as
    `numpy.load` returns them. `name` names the source in reasons (default: the path, or
    "the .npy data"). The array is writable.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        handle = io.BytesIO(data)
        return _npy_array(handle, len(data), name or "the .npy data", max_bytes, kinds, ndim)
    label = name or os.fspath(source)
    with _open_regular(source, label, NpyError, NpyError) as (handle, info):
        return _npy_array(handle, info.st_size, label, max_bytes, kinds, ndim)


def _npy_array(handle, size: int, label: str, max_bytes: int, kinds: str, ndim: int | None) -> np.ndarray:
    """`read_npy` on an open binary stream of `size` bytes, positioned at its start."""
    import numpy as np

    npy = np.lib.format
    try:
        version = npy.read_magic(handle)
        if version == (1, 0):
            shape, fortran_order, dtype = npy.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, fortran_order, dtype = npy.read_array_header_2_0(handle)
        else:
            raise ValueError(f"format version {version[0]}.{version[1]}, not 1.0 or 2.0")
    except (ValueError, TypeError, SyntaxError, RecursionError, OverflowError, EOFError) as exc:
        reason = " ".join(str(exc).split())[:160]
        raise NpyError(f"{label} is not a numpy .npy array ({reason}); write it with numpy.save") from None
    if dtype.hasobject:
        raise NpyError(f"{label} holds Python objects (a pickle), not numbers; save a numeric array with "
                       "numpy.save(..., allow_pickle=False)")
    if dtype.kind not in kinds or dtype.subdtype is not None or dtype.names is not None:
        names = [_KIND_NAMES.get(kind, repr(kind)) for kind in kinds]
        allowed = " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
        raise NpyError(f"{label} holds {dtype} values, not {allowed} numbers")
    if any(n < 0 for n in shape):
        raise NpyError(f"{label} has a header with an impossible shape {shape}")
    if ndim is not None and len(shape) != ndim:
        raise NpyError(f"{label} has shape {shape}: {len(shape)} dimension(s), not {ndim}")
    expected = math.prod(shape) * dtype.itemsize
    following = size - handle.tell()
    if expected != following:
        raise NpyError(f"{label} has a header that claims shape {shape} of {dtype} ({expected} bytes) but "
                       f"{following} bytes follow it; the file is damaged or forged, write it again with numpy.save")
    if expected > max_bytes:
        raise NpyError(f"{label} holds shape {shape} of {dtype}: {expected} bytes, over the {max_bytes} allowed")
    buffer = bytearray(expected)
    view, got = memoryview(buffer), 0
    while got < expected:
        n = handle.readinto(view[got:])
        if not n:
            raise NpyError(f"{label} ended after {got} of its {expected} data bytes while being read; write it again")
        got += n
    count = math.prod(shape)
    array = np.frombuffer(buffer, dtype=dtype, count=count) if count else np.empty(0, dtype=dtype)
    if fortran_order:
        return array.reshape(shape[::-1]).transpose()
    return array.reshape(shape)
