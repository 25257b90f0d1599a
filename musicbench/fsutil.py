"""Filesystem helpers: atomic writes, Parquet tables and paths that never leave the data root."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from musicbench.errors import MusicbenchError

if TYPE_CHECKING:
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


def resolve_in_root(root: str | os.PathLike, relative: str | os.PathLike) -> Path:
    """Resolve `relative` under `root`, refusing any path that would leave `root`.

    Absolute paths, `..` components and symlinks pointing outside are all rejected with
    a MusicbenchError, since manifest paths are untrusted input.
    """
    root_resolved = Path(root).resolve()
    rel = Path(relative)
    if rel.is_absolute() or any(part == ".." for part in rel.parts) or str(relative) == "":
        raise MusicbenchError(
            f"path {str(relative)!r} must be relative to the data root {str(root)!r} without '..'"
        )
    candidate = (root_resolved / rel).resolve()
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
    except OSError as exc:
        raise MusicbenchError(f"cannot read {what} {os.fspath(path)!r}: {exc.strerror}" + (f"; {hint}" if hint else "")) from None


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
