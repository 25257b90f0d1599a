"""The model process: load a user's model file and answer calls over a socket that carries data only.

Run by `musicbench.model_runner.ModelRunner` by file path, ``python /path/to/model_child.py --fd N
[--hide PATH ...] [--scratch DIR] [--python OTHER]``, under the harness's interpreter, which confines
the process (`confine.py` beside this file, loaded by path) and, with ``--python``, then execs another
interpreter on this same file (e.g. a method's own environment, Python 3.9 or later): nothing of that
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
  {...}, "arrays": [...]}`` per call, the arrays being keyword arguments too (mixture float32,
  frames uint8; points come as JSON pairs and are passed on as ``(x, y)`` tuples); ``{"stop":
  true}`` or end of file ends the process.
- Child → harness: first, before the model file is read, ``{"status": "ok", "confined": bool,
  "confinement": one line}``, then ``{"status": "ok", "runtime": {...}}`` (`runtime_versions`: the
  interpreter and its python, numpy and torch versions); ``{"status": "ok", "info": {...}}``
  (`describe_model`) after loading,
  ``{"status": "ok", "arrays": [one entry]}`` with the result array after a call, or
  ``{"status": "error", "reason": one line}`` for either.

The harness trusts none of the child's answer: it caps frame sizes, accepts float32 and float64
arrays only (other dtypes are refused with a reason), checks the byte count against dtype and
shape, and rebuilds the array with `numpy.frombuffer`.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and sys.path and os.path.realpath(sys.path[0]) == os.path.dirname(os.path.realpath(__file__)):
    sys.path[0] = os.getcwd()  # run by path: the harness's own modules must not shadow the model's (as with -m)

import argparse  # noqa: E402
import hashlib  # noqa: E402
import importlib.metadata  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import socket  # noqa: E402
import struct  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

FRAME_LENGTH = struct.Struct(">Q")
INPUT_DTYPES = ("<f4", "<f8", "|u1")  # what the harness sends: mixture float32, frames uint8


class ModelFileError(Exception):
    """The model file is missing, not Python, or defines no load_model."""


def load_model_file(path: str | os.PathLike, options: dict[str, Any] | None = None) -> Any:
    """Import a model file and return ``load_model(**options)`` (in the calling process)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {str(path)!r} does not exist")
    name = "musicbench_user_model_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ModelFileError(f"model file {str(path)!r} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    if not callable(getattr(module, "load_model", None)):
        raise ModelFileError(f"model file {str(path)!r} defines no load_model(**options) function")
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


def recv_frame(sock: socket.socket, max_bytes: int, deadline: float | None = None) -> bytearray:
    """One frame's payload; EOFError if the peer closed, ValueError if it is over `max_bytes`,
    TimeoutError once `deadline` (a `time.monotonic` value) passes."""
    length = FRAME_LENGTH.unpack(_recv_exact(sock, FRAME_LENGTH.size, deadline))[0]
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


def recv_message(sock: socket.socket, max_header_bytes: int, max_array_bytes: int,
                 deadline: float | None = None) -> tuple[dict[str, Any], list[tuple[Any, bytearray]]]:
    """A message: its JSON header and (array entry, raw bytes) pairs. Raises ValueError on a
    malformed header; the arrays are not decoded (see `array_from_frame`)."""
    header = json.loads(recv_frame(sock, max_header_bytes, deadline))
    if not isinstance(header, dict) or not isinstance(header.get("arrays", []), list):
        raise ValueError("the header is not a JSON object with a list of arrays")
    entries = header.get("arrays", [])
    if len(entries) > 16:
        raise ValueError(f"{len(entries)} arrays in one message")
    return header, [(entry, recv_frame(sock, max_array_bytes, deadline)) for entry in entries]


def array_from_frame(entry: Any, payload: bytearray, dtypes: tuple[str, ...]) -> np.ndarray:
    """The array an entry ``{"dtype", "shape"}`` and its bytes describe; ValueError unless the dtype
    is one of `dtypes` and the byte count matches the shape."""
    if not isinstance(entry, dict) or entry.get("dtype") not in dtypes:
        raise ValueError(f"dtype {entry.get('dtype') if isinstance(entry, dict) else None!r} is not one of {dtypes}")
    shape = entry.get("shape")
    if not isinstance(shape, list) or len(shape) > 8 or not all(type(n) is int and n >= 0 for n in shape):
        raise ValueError(f"shape {shape!r} is not a list of at most 8 non-negative integers")
    dtype = np.dtype(entry["dtype"])
    if math.prod(shape) * dtype.itemsize != len(payload):
        raise ValueError(f"{len(payload)} bytes do not hold an array of shape {tuple(shape)} and dtype {dtype}")
    return np.frombuffer(payload, dtype=dtype).reshape(shape)


def _result_array(method: str, result: Any) -> tuple[np.ndarray | None, str]:
    """The model's result as a numeric array, or (None, why not)."""
    try:
        array = np.asarray(result)
    except Exception as exc:
        return None, f"{method} returned {type(result).__name__}, not an array of numbers ({short_error(exc)})"
    if array.dtype.kind not in "biuf":
        return None, f"{method} returned {type(result).__name__}, not an array of numbers (dtype {array.dtype})"
    return array, ""


def _answer_calls(sock: socket.socket, model: Any) -> None:
    while True:
        try:
            header, frames = recv_message(sock, 1 << 24, 1 << 40)
        except EOFError:
            return
        if header.get("stop"):
            return
        method, kwargs = header["call"], dict(header.get("kwargs", {}))
        kwargs.update({entry["name"]: array_from_frame(entry, payload, INPUT_DTYPES) for entry, payload in frames})
        if "points" in kwargs:
            kwargs["points"] = [tuple(point) for point in kwargs["points"]]
        try:
            array, reason = _result_array(method, getattr(model, method)(**kwargs))
        except BaseException as exc:  # report anything, including SystemExit from the model
            array, reason = None, short_error(exc)
        if array is None:
            send_message(sock, {"status": "error", "reason": reason})
        else:
            send_message(sock, {"status": "ok"}, {"result": array})


def main(argv: list[str] | None = None) -> None:
    """Serve one model file on the socket ``--fd`` until the harness stops it."""
    parser = argparse.ArgumentParser(prog="musicbench.model_child")
    parser.add_argument("--fd", type=int, required=True, help="the protocol socket's file descriptor")
    parser.add_argument("--hide", action="append", default=[], help="a path the model must not see (repeatable)")
    parser.add_argument("--scratch", default=None, help="the one folder the model may write to")
    parser.add_argument("--no-confine", action="store_true", help="run the model unconfined (debugging)")
    parser.add_argument("--cwd", default=None, help="the harness's working directory (read-only once confined)")
    parser.add_argument("--python", default=None, help="once confined, go on under this interpreter (exec)")
    parser.add_argument("--after-confinement", action="store_true", help="(set by --python) confinement was done")
    args = parser.parse_args(argv)
    os.dup2(2, 1)  # the model's prints go to stderr; the protocol has its own socket
    sock = socket.socket(fileno=args.fd)
    if not args.after_confinement:
        # Confinement comes first, under the harness's interpreter, and its outcome is sent before anything of
        # the model or of another interpreter (--python: its site-packages run code at startup) is read or run,
        # so neither can escape it or change what the harness records about it.
        if args.scratch is None:
            confined, detail = False, "unconfined: no scratch folder given"
        else:
            outcome = _load_confine().confine(args.hide, Path(args.scratch), enabled=not args.no_confine)
            confined, detail = outcome.confined, outcome.detail
        if args.cwd is not None:
            try:  # relative paths in the model's options mean what they meant to the user (read-only)
                os.chdir(args.cwd)
            except OSError:  # hidden from the model: it stays in its scratch folder
                pass
        send_message(sock, {"status": "ok", "confined": confined, "confinement": detail})
        if args.python is not None:
            os.set_inheritable(args.fd, True)
            try:
                os.execv(args.python, [args.python, os.path.abspath(__file__), "--fd", str(args.fd), "--after-confinement"])
            except OSError as exc:
                send_message(sock, {"status": "error", "reason": f"cannot run {args.python}: {exc.strerror}"})
                return
    send_message(sock, {"status": "ok", "runtime": runtime_versions()})
    try:
        request, _ = recv_message(sock, 1 << 24, 0)
    except EOFError:
        return
    try:
        model = load_model_file(request["load"], request.get("options"))
        info = describe_model(model)
    except BaseException as exc:  # report anything, including SystemExit from the model file
        send_message(sock, {"status": "error", "reason": f"loading failed: {short_error(exc)}"})
        return
    send_message(sock, {"status": "ok", "info": info})
    _answer_calls(sock, model)

if __name__ == "__main__":
    main()
