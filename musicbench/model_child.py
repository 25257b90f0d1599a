"""The model process: load a user's model file and answer calls over a socket that carries data only.

Run by `musicbench.model_runner.ModelRunner` by file path in isolated mode, ``python -I
/path/to/model_child.py --fd N --parent-pid P [--hide PATH ...] [--scratch DIR] [--python OTHER]``,
under the harness's interpreter and with a minimal environment: ``-I`` puts neither the current
folder, nor this file's folder, nor ``PYTHONPATH`` nor the user's site-packages on the import path,
so nothing but the standard library and the interpreter's own site-packages is imported before the
process confines itself (`confine.py` beside this file, loaded by path). The process dies with the
harness (``PR_SET_PDEATHSIG``). Only once confined does the import path get the model file's folder
and the harness's working folder, and with ``--python`` another interpreter (e.g. a method's own
environment, Python 3.9 or later) is exec'd on this same file, also with ``-I``: nothing of that
environment runs before the confinement. It imports nothing of the musicbench package: this file and
`confine.py` need only numpy and the standard library.

Protocol (nothing on it is ever unpickled or evaluated):

- The channel is the AF_UNIX socket on fd N. The process's fd 1 is pointed at fd 2 before the
  model file is imported, so the model's prints go to stderr and never reach the channel.
- A *frame* is an 8-byte big-endian length, then that many bytes. A *message* is one frame holding
  a UTF-8 JSON object (the header), followed by one frame per entry of its ``"arrays"`` list, each
  the raw C-order bytes of an array described by the entry: ``{"name": str, "dtype": str,
  "shape": [int, ...]}``, dtype a little-endian numpy type string (``"<f4"``, ``"<f8"``, ``"|u1"``).
- Harness → child: ``{"load": path, "options": {...}}`` first; then ``{"call": method, "kwargs":
  {...}, "arrays": [...]}`` per call, each request with an ``"id"`` that its answer repeats, the
  arrays being keyword arguments too (mixture float32, frames uint8; points come as JSON pairs and
  are passed on as ``(x, y)`` tuples); ``{"stop": true}`` or end of file ends the process.
- Child → harness: first, before the model file is read, ``{"status": "ok", "confined": bool,
  "confinement": one line}``, then ``{"status": "ok", "runtime": {...}}`` (`runtime_versions`: the
  interpreter and its python, numpy and torch versions); ``{"status": "ok", "info": {...}}``
  (`describe_model`) after loading,
  ``{"status": "ok", "arrays": [one entry]}`` with the result array after a call, or
  ``{"status": "error", "reason": one line}`` for either (a result that is not float32 or float64
  is such an error).

The harness trusts none of the child's answer (the model runs in this process and can write to the
socket itself): it checks each header's array entries (count, dtype, shape) before reading any
array, reads each array frame only if its length is exactly what dtype and shape need and the total
stays under its cap, rebuilds the array with `numpy.frombuffer`, and restarts the process after any
answer it refuses or whose id is not the request's, so a forged or stale answer cannot shift the
answers of later calls.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import importlib.metadata
import importlib.util
import inspect
import json
import math
import os
import platform
import signal
import socket
import struct
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np

FRAME_LENGTH = struct.Struct(">Q")
INPUT_DTYPES = ("<f4", "<f8", "|u1")  # what the harness sends: mixture float32, frames uint8
RESULT_DTYPES = ("<f4", "<f8")  # what a model may return: float32, float64
MAX_ARRAYS = 16  # in one message
PR_SET_PDEATHSIG = 1


class ModelFileError(Exception):
    """The model file is missing, not Python, or defines no load_model."""


def undeclared_options(load_model: Any, options: dict[str, Any]) -> list[str]:
    """The options that `load_model` does not name as parameters. When it takes no ``**kwargs`` the
    call could not accept them: a one-line ModelFileError naming them and what it takes."""
    try:
        parameters = list(inspect.signature(load_model).parameters.values())
    except (TypeError, ValueError):  # a callable without a readable signature: no check
        return []
    named = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    unknown = sorted(set(options) - named)
    if not unknown or any(p.kind == p.VAR_KEYWORD for p in parameters):
        return unknown
    takes = ", ".join(sorted(named)) or "nothing"
    device = " (the harness always passes device: add a device parameter)" if "device" in unknown else ""
    raise ModelFileError(f"load_model has no parameter {', '.join(map(repr, unknown))}{device}; it takes {takes}: "
                         "fix the --option name, or add the parameter to load_model")


def load_model_file(path: str | os.PathLike, options: dict[str, Any] | None = None,
                    undeclared: list[str] | None = None) -> Any:
    """Import a model file and return ``load_model(**options)`` (in the calling process). Options
    that load_model does not name are refused, or, when it takes ``**kwargs``, listed in `undeclared`."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {str(path)!r} does not exist")
    name = "musicbench_user_model_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModelFileError(f"model file {str(path)!r} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    folder = str(path.resolve().parent)  # the model's own modules (from helpers import ...)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "load_model", None)):
        raise ModelFileError(f"model file {str(path)!r} defines no load_model(**options) function")
    unknown = undeclared_options(module.load_model, options or {})
    if undeclared is not None:
        undeclared.extend(unknown)
    return module.load_model(**(options or {}))


def describe_model(model: Any) -> dict[str, Any]:
    """What the harness needs to know of a loaded model: methods, labels, torch parameter count."""
    n_parameters = None
    for candidate in (model, getattr(model, "net", None), getattr(model, "module", None)):
        parameters = getattr(candidate, "parameters", None)
        if callable(parameters):
            try:
                n_parameters = int(sum(p.numel() for p in parameters()))
                break
            except Exception:  # not torch-like
                pass
    return {
        "uses_labels": bool(getattr(model, "uses_labels", False)),
        "has_separate": callable(getattr(model, "separate", None)),
        "has_localize": callable(getattr(model, "localize", None)),
        "has_localize_classes": callable(getattr(model, "localize_classes", None)),
        "has_separate_at": callable(getattr(model, "separate_at", None)),
        "n_parameters": n_parameters,
    }


def runtime_versions() -> dict[str, str | None]:
    """The interpreter running this process and its python, numpy and torch versions (None: absent);
    torch's is read from its package metadata, without importing it."""
    try:
        torch = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch = None
    return {"executable": sys.executable, "python": platform.python_version(), "numpy": np.__version__, "torch": torch}


def _load_confine() -> Any:
    """`confine.py` beside this file, loaded by path (the child imports nothing of the musicbench package)."""
    spec = importlib.util.spec_from_file_location("musicbench_model_child_confine", Path(__file__).with_name("confine.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def short_error(exc: BaseException) -> str:
    """One line: the exception's type, the first line of its message and where it was raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}{where}"


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    return left


def recv_frame(sock: socket.socket, max_bytes: int, deadline: float | None = None, exact: int | None = None) -> bytearray:
    """One frame's payload; EOFError if the peer closed, ValueError if it is over `max_bytes` (or, with
    `exact`, of any other length: checked before anything is allocated), TimeoutError once `deadline`
    (a `time.monotonic` value) passes."""
    length = FRAME_LENGTH.unpack(_recv_exact(sock, FRAME_LENGTH.size, deadline))[0]
    if exact is not None and length != exact:
        raise ValueError(f"a frame of {length} bytes where its header announced {exact}")
    if length > max_bytes:
        raise ValueError(f"a frame of {length} bytes, over the limit of {max_bytes}")
    return _recv_exact(sock, length, deadline)


def _recv_exact(sock: socket.socket, n_bytes: int, deadline: float | None) -> bytearray:
    buffer = bytearray(n_bytes)
    view, received = memoryview(buffer), 0
    while received < n_bytes:
        sock.settimeout(_remaining(deadline))
        count = sock.recv_into(view[received:], n_bytes - received)
        if count == 0:
            raise EOFError("the peer closed the channel")
        received += count
    return buffer


def _plain_scalar(value: Any) -> Any:
    """A numpy scalar (e.g. a sample rate read from a table) as the Python number JSON can write."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} cannot be sent to the model process")


def send_message(sock: socket.socket, header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None,
                 deadline: float | None = None) -> None:
    """Send `header` as JSON and each array as raw little-endian C-order bytes (see the module docstring)."""
    raw = {name: np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")) for name, array in (arrays or {}).items()}
    header = {**header, "arrays": [{"name": name, "dtype": array.dtype.str, "shape": list(array.shape)}
                                   for name, array in raw.items()]}
    payloads = [json.dumps(header, default=_plain_scalar).encode()]
    payloads += [memoryview(array.reshape(-1).view(np.uint8)) for array in raw.values()]
    for payload in payloads:
        sock.settimeout(_remaining(deadline))
        sock.sendall(FRAME_LENGTH.pack(len(payload)))
        sock.settimeout(_remaining(deadline))
        sock.sendall(payload)


def array_bytes(entry: Any, dtypes: tuple[str, ...]) -> int:
    """The byte count of the array an entry ``{"dtype", "shape"}`` announces; ValueError unless the
    dtype is one of `dtypes` and the shape a list of at most 8 non-negative integers."""
    if not isinstance(entry, dict) or entry.get("dtype") not in dtypes:
        dtype = entry.get("dtype") if isinstance(entry, dict) else None
        raise ValueError(f"an array of dtype {str(dtype)[:20]!r}, not one of {', '.join(dtypes)}")
    shape = entry.get("shape")
    if not isinstance(shape, list) or len(shape) > 8 or not all(type(n) is int and n >= 0 for n in shape):
        raise ValueError(f"shape {str(shape)[:60]} is not a list of at most 8 non-negative integers")
    return math.prod(shape) * np.dtype(entry["dtype"]).itemsize


def recv_message(sock: socket.socket, max_header_bytes: int, max_array_bytes: int, deadline: float | None = None, *,
                 dtypes: tuple[str, ...] = INPUT_DTYPES, max_arrays: int = MAX_ARRAYS,
                 ) -> tuple[dict[str, Any], list[tuple[dict[str, Any], bytearray]]]:
    """A message: its JSON header and (array entry, raw bytes) pairs. ValueError on a malformed
    header, more than `max_arrays` arrays, an entry whose dtype is not one of `dtypes`, arrays of more
    than `max_array_bytes` together, or a frame whose length is not its entry's: all checked before
    any array is read. The arrays are not decoded (see `array_from_frame`)."""
    header = json.loads(recv_frame(sock, max_header_bytes, deadline))
    if not isinstance(header, dict) or not isinstance(header.get("arrays", []), list):
        raise ValueError("the header is not a JSON object with a list of arrays")
    entries = header.get("arrays", [])
    if len(entries) > max_arrays:
        raise ValueError(f"{len(entries)} arrays in one message, over the limit of {max_arrays}")
    sizes = [array_bytes(entry, dtypes) for entry in entries]
    if sum(sizes) > max_array_bytes:
        raise ValueError(f"arrays of {sum(sizes)} bytes in one message, over the limit of {max_array_bytes}")
    return header, [(entry, recv_frame(sock, size, deadline, exact=size)) for entry, size in zip(entries, sizes)]


def array_from_frame(entry: dict[str, Any], payload: bytearray) -> np.ndarray:
    """The array of an entry checked by `recv_message` and its bytes (a view of them, not a copy)."""
    return np.frombuffer(payload, dtype=np.dtype(entry["dtype"])).reshape(entry["shape"])


def result_array(method: str, result: Any) -> tuple[np.ndarray | None, str]:
    """The model's result as a float32 or float64 array, or (None, why not)."""
    try:
        array = np.asarray(result)
    except Exception as exc:
        return None, f"{method} returned {type(result).__name__}, not an array of numbers ({short_error(exc)})"
    if array.dtype.kind not in "biuf":
        return None, f"{method} returned {type(result).__name__}, not an array of numbers (dtype {array.dtype})"
    if array.dtype.newbyteorder("<").str not in RESULT_DTYPES:
        return None, f"{method} returned {array.dtype.name} values: return floats (float32 or float64)"
    return array, ""


def _answer_calls(sock: socket.socket, model: Any) -> None:
    while True:
        try:
            header, frames = recv_message(sock, 1 << 24, 1 << 40)
        except EOFError:
            return
        if header.get("stop"):
            return
        method, kwargs, request = header["call"], dict(header.get("kwargs", {})), {"id": header.get("id")}
        kwargs.update({entry["name"]: array_from_frame(entry, payload) for entry, payload in frames})
        if "points" in kwargs:
            kwargs["points"] = [tuple(point) for point in kwargs["points"]]
        try:
            array, reason = result_array(method, getattr(model, method)(**kwargs))
        except BaseException as exc:  # report anything, including SystemExit from the model
            array, reason = None, short_error(exc)
        if array is None:
            send_message(sock, {**request, "status": "error", "reason": reason})
        else:
            send_message(sock, {**request, "status": "ok"}, {"result": array})


def _die_with_parent(parent_pid: int | None) -> None:
    """SIGKILL this process when the harness that started it dies (Linux), and exit if it already has."""
    if parent_pid is None:
        return
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def main(argv: list[str] | None = None) -> None:
    """Serve one model file on the socket ``--fd`` until the harness stops it."""
    parser = argparse.ArgumentParser(prog="musicbench.model_child")
    parser.add_argument("--fd", type=int, required=True, help="the protocol socket's file descriptor")
    parser.add_argument("--parent-pid", type=int, default=None, help="the harness's process id: die with it")
    parser.add_argument("--hide", action="append", default=[], help="a path the model must not see (repeatable)")
    parser.add_argument("--scratch", default=None, help="the one folder the model may write to")
    parser.add_argument("--scratch-bytes", type=int, default=None, help="size of the scratch folder and of /dev/shm")
    parser.add_argument("--no-confine", action="store_true", help="run the model unconfined (debugging)")
    parser.add_argument("--cwd", default=None, help="the harness's working directory (read-only once confined)")
    parser.add_argument("--python", default=None, help="once confined, go on under this interpreter (exec)")
    parser.add_argument("--after-confinement", action="store_true", help="(set by --python) confinement was done")
    args = parser.parse_args(argv)
    _die_with_parent(args.parent_pid)
    os.dup2(2, 1)  # the model's prints go to stderr; the protocol has its own socket
    sock = socket.socket(fileno=args.fd)
    if not args.after_confinement:
        # Confinement comes first, under the harness's interpreter, and its outcome is sent before anything of
        # the model or of another interpreter (--python: its site-packages run code at startup) is read or run,
        # so neither can escape it or change what the harness records about it.
        if args.scratch is None:
            confined, detail = False, "unconfined: no scratch folder given"
        else:
            outcome = _load_confine().confine(args.hide, Path(args.scratch), enabled=not args.no_confine,
                                              scratch_bytes=args.scratch_bytes)
            confined, detail = outcome.confined, outcome.detail
        send_message(sock, {"status": "ok", "confined": confined, "confinement": detail})
        if not confined and not args.no_confine:
            return  # confinement was asked for and cannot be had: nothing of the model runs
        if args.cwd is not None:
            try:  # relative paths in the model's options mean what they meant to the user (read-only)
                os.chdir(args.cwd)
            except OSError:  # hidden from the model: it stays in its scratch folder
                pass
        if args.python is not None:
            os.set_inheritable(args.fd, True)
            try:
                os.execv(args.python, [args.python, "-I", os.path.abspath(__file__), "--fd", str(args.fd),
                                       "--after-confinement"])
            except OSError as exc:
                send_message(sock, {"status": "error", "reason": f"cannot run {args.python}: {exc.strerror}"})
                return
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # modules of the folder the harness was started from, after everything else
    send_message(sock, {"status": "ok", "runtime": runtime_versions()})
    try:
        request, _ = recv_message(sock, 1 << 24, 0)
    except EOFError:
        return
    reply = {"id": request.get("id")}
    try:
        undeclared: list[str] = []
        model = load_model_file(request["load"], request.get("options"), undeclared)
        info = {**describe_model(model), "undeclared_options": undeclared}
    except BaseException as exc:  # report anything, including SystemExit from the model file
        send_message(sock, {**reply, "status": "error", "reason": f"loading failed: {short_error(exc)}"})
        return
    send_message(sock, {**reply, "status": "ok", "info": info})
    _answer_calls(sock, model)


if __name__ == "__main__":
    main()
