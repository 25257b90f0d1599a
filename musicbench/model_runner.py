"""Running a user's model file isolated in a subprocess, one call at a time, with a time limit.

The model file defines ``load_model(**options)`` returning an object with
``separate(mixture, frames, sample_rate)`` and optionally ``localize(...)`` and
``separate_at(mixture, frames, points)`` (see the README's model API). `ModelRunner` loads it in
a fresh ``spawn`` process; every call either returns the result or a one-line reason: the model
raised, exceeded the per-call timeout (the process is killed and restarted for the next call), or
the process died (crash, ``sys.exit``, out of memory). The harness never crashes because of a model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import multiprocessing as mp
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from musicbench.errors import MusicbenchError

LOAD_TIMEOUT = 300.0  # seconds to import the file and call load_model


def load_model_file(path: str | os.PathLike, options: dict[str, Any] | None = None) -> Any:
    """Import a model file and return ``load_model(**options)`` (in the calling process)."""
    path = Path(path)
    if not path.is_file():
        raise MusicbenchError(f"model file {str(path)!r} does not exist")
    name = "musicbench_user_model_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise MusicbenchError(f"model file {str(path)!r} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    if not callable(getattr(module, "load_model", None)):
        raise MusicbenchError(f"model file {str(path)!r} defines no load_model(**options) function")
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


def _short_error(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}{where}"


def _worker(conn, path: str, options: dict[str, Any]) -> None:
    """Subprocess body: load the model, then answer (method, kwargs) requests until told to stop."""
    try:
        model = load_model_file(path, options)
        conn.send(("ok", describe_model(model)))
    except BaseException as exc:  # report anything, including SystemExit from the model file
        conn.send(("error", f"loading failed: {_short_error(exc)}"))
        return
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        if request is None:
            return
        method, kwargs = request
        try:
            result = getattr(model, method)(**kwargs)
            conn.send(("ok", result))
        except BaseException as exc:
            conn.send(("error", _short_error(exc)))


@dataclass
class CallResult:
    """The outcome of one model call: ok with a value, or failed with a one-line reason."""

    ok: bool
    value: Any = None
    reason: str = ""
    seconds: float = 0.0


class ModelRunner:
    """A model file loaded in a subprocess; `call` runs one method with a timeout.

    Use as a context manager. `info` describes the model (see `describe_model`); if loading
    failed, `load_error` holds the reason and every call fails with it.
    """

    def __init__(self, path: str | os.PathLike, options: dict[str, Any] | None = None, timeout: float = 60.0):
        self.path, self.options, self.timeout = str(path), dict(options or {}), float(timeout)
        self._ctx = mp.get_context("spawn")
        self._process = None
        self._conn = None
        self.info: dict[str, Any] = {}
        self.load_error = ""
        self._start()

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        self._process = self._ctx.Process(target=_worker, args=(child, self.path, self.options), daemon=True)
        self._process.start()
        child.close()
        self._conn = parent
        status, value = self._receive(LOAD_TIMEOUT, "loading the model")
        if status == "ok":
            self.info, self.load_error = value, ""
        else:
            self.load_error = value
            self._stop()

    def _receive(self, timeout: float, what: str) -> tuple[str, Any]:
        try:
            if not self._conn.poll(timeout):
                self._stop()
                return "error", f"timeout: {what} took longer than {timeout:g} s"
            return self._conn.recv()
        except (EOFError, ConnectionError, OSError):
            self._process.join(5)
            code = self._process.exitcode
            self._stop()
            return "error", f"the model process died while {what} (exit code {code})"
        except Exception as exc:  # an unpicklable result
            self._stop()
            return "error", f"the model's answer could not be received: {_short_error(exc)}"

    def _stop(self) -> None:
        if self._process is not None and self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        if self._conn is not None:
            self._conn.close()
        self._process = self._conn = None

    def call(self, method: str, **kwargs: Any) -> CallResult:
        """Run ``model.method(**kwargs)`` in the subprocess; restart it first if it had died."""
        if self._process is None:
            if self.load_error and not self.info:
                return CallResult(False, reason=self.load_error)
            self._start()
            if self.load_error:
                return CallResult(False, reason=self.load_error)
        start = time.perf_counter()
        try:
            self._conn.send((method, kwargs))
        except (BrokenPipeError, ConnectionError, OSError):
            self._stop()
            return CallResult(False, reason="the model process died before the call", seconds=0.0)
        status, value = self._receive(self.timeout, f"running {method}")
        seconds = time.perf_counter() - start
        return CallResult(status == "ok", value if status == "ok" else None, "" if status == "ok" else value, seconds)

    def close(self) -> None:
        """Ask the subprocess to stop, then make sure it has."""
        if self._conn is not None:
            try:
                self._conn.send(None)
            except (BrokenPipeError, ConnectionError, OSError):
                pass
            if self._process is not None:
                self._process.join(5)
        self._stop()

    def __enter__(self) -> "ModelRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
