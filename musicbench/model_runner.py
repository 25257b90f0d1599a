"""Running a user's model file isolated in a subprocess, one call at a time, with time limits.

The model file defines ``load_model(**options)`` returning an object with
``separate(mixture, frames, sample_rate)`` and optionally ``localize(...)`` and
``separate_at(mixture, frames, points)`` (see the README's model API). `ModelRunner` starts
``python -I path/to/musicbench/model_child.py`` with a minimal environment (`model_environment`),
which dies with the harness, confines itself and, with ``--python``, goes on under another
interpreter that has numpy (exec, after confinement), and talks to it over a socket that carries
JSON and raw array bytes only, never pickles (the protocol is in `musicbench.model_child`'s
docstring): whatever the model returns, nothing of it runs in the harness. Confinement that cannot
be had is a load error, unless the runner was asked to run unconfined. Every call either returns a
float32 or float64 array or a one-line reason: the model raised, returned something else, exceeded
the per-call timeout (the process is killed and restarted for the next call), sent an answer the
harness refuses (restarted too), or the process died (crash, ``sys.exit``, killed, out of memory).
The harness never crashes because of a model.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from musicbench.concurrency import keep, remove_if_killed
from musicbench.confine import SCRATCH_BYTES
from musicbench.errors import MusicbenchError
from musicbench.model_child import RESULT_DTYPES, array_from_frame, recv_message, send_message
from musicbench.model_child import __file__ as MODEL_CHILD_FILE
from musicbench.progress import plain

LOAD_TIMEOUT = 300.0  # default seconds to import the file and call load_model (--load-timeout)
MAX_HEADER_BYTES = 1 << 20  # of the child's JSON answer
MAX_ARRAY_BYTES = 1 << 28  # of the child's result array
MAX_MODEL_OUTPUT = 1 << 20  # bytes of the model's prints shown on the harness's stderr, per runner
MAX_PARAMETERS = 1 << 53  # a parameter count at or above this is not believed (nor exact in JSON)
INFO_FLAGS = ("uses_labels", "has_separate", "has_localize", "has_separate_at", "has_localize_classes")
RUNTIME_KEYS = ("executable", "python", "numpy", "torch")
# What the model process inherits of the harness's environment: locale, search path and the choice of
# devices, CPU kernels and threads; never tokens, credentials or anything else (HOME and TMPDIR: its scratch folder).
MODEL_ENVIRONMENT = re.compile(r"PATH|LANG|LANGUAGE|LC_\w+|TZ|TERM|LD_LIBRARY_PATH|CUDA_VISIBLE_DEVICES|CUDA_DEVICE_ORDER|"
                               r"HIP_VISIBLE_DEVICES|ROCR_VISIBLE_DEVICES|OMP_NUM_THREADS|MKL_NUM_THREADS|"
                               r"OPENBLAS_NUM_THREADS|NUMEXPR_NUM_THREADS|ATEN_CPU_CAPABILITY|DNNL_MAX_CPU_ISA|ONEDNN_MAX_CPU_ISA|"
                               r"MKL_ENABLE_INSTRUCTIONS|MKL_CBWR")
NOT_CONFINED = ("the model process could not be confined ({detail}); evaluating it unconfined would let it read the "
                "references: fix the cause, or pass --no-confine to run it unconfined on purpose")


@dataclass
class CallResult:
    """The outcome of one model call: ok with an array, or failed with a one-line reason."""

    ok: bool
    value: Any = None
    reason: str = ""
    seconds: float = 0.0


def _one_line(text: Any) -> str:
    """A reason from the model process as one printable line of at most 300 characters."""
    if not isinstance(text, str):
        return "the model process sent a malformed reason"
    line = " ".join(text.split())
    return line if len(line) <= 300 else line[:297] + "..."


def model_environment(scratch: str) -> dict[str, str]:
    """The model process's environment: the harness's variables that `MODEL_ENVIRONMENT` names, with
    HOME and TMPDIR set to its scratch folder."""
    kept = {name: value for name, value in os.environ.items() if MODEL_ENVIRONMENT.fullmatch(name)}
    return {**kept, "HOME": scratch, "TMPDIR": scratch}


def describe_exit(code: int | None) -> str:
    """How the model process ended, from its exit status (negative: the signal that killed it)."""
    if code is None:
        return "it did not exit"
    signum = -code if code < 0 else code - 128 if 128 < code < 160 else None
    if signum is None:
        return f"exit code {code}"
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    return f"killed by {name}" + (" (out of memory?)" if signum == signal.SIGKILL else "")


def _checked_info(info: Any, options: dict[str, Any]) -> dict[str, Any]:
    """The model's description from the child, with exactly the expected keys and types;
    ``undeclared_options`` keeps only names of the `options` given."""
    if not isinstance(info, dict) or any(type(info.get(flag)) is not bool for flag in INFO_FLAGS):
        raise ValueError("the model description is malformed")
    n_parameters = info.get("n_parameters")
    if n_parameters is not None and (type(n_parameters) is not int or not 0 <= n_parameters < MAX_PARAMETERS):
        raise ValueError(f"the model's parameter count is not an integer from 0 to 2**53 ({str(n_parameters)[:30]})")
    undeclared = info.get("undeclared_options")
    undeclared = sorted({name for name in undeclared if name in options}) if isinstance(undeclared, list) else []
    return {**{flag: info[flag] for flag in INFO_FLAGS}, "n_parameters": n_parameters, "undeclared_options": undeclared}


def _checked_confinement(header: dict[str, Any]) -> dict[str, Any]:
    """The child's confinement report (sent before the model is imported): ``confined``, ``confinement``."""
    confined, detail = header.get("confined"), header.get("confinement")
    if type(confined) is not bool or not isinstance(detail, str):
        raise ValueError("the confinement report is malformed")
    return {"confined": confined, "confinement": _one_line(detail)}


def _checked_runtime(header: dict[str, Any]) -> dict[str, Any]:
    """The child's report of its interpreter (sent before the model is imported): ``interpreter``
    with ``executable``, ``python``, ``numpy``, ``torch`` (one-line strings, or None where absent)."""
    runtime = header.get("runtime")
    if not isinstance(runtime, dict) or any(runtime.get(key) is not None and not isinstance(runtime.get(key), str)
                                            for key in RUNTIME_KEYS):
        raise ValueError("the interpreter report is malformed")
    return {"interpreter": {key: None if runtime.get(key) is None else _one_line(runtime[key]) for key in RUNTIME_KEYS}}


def python_interpreter(python: str | os.PathLike | None) -> str:
    """The interpreter to run the model process: `python` (a path, or a command on PATH) made absolute,
    or the harness's own; MusicbenchError if it is not an executable file."""
    if python is None:
        return sys.executable
    found = shutil.which(os.fspath(python))
    if found is None:
        raise MusicbenchError(f"--python {os.fspath(python)!r} is not an executable Python interpreter; "
                              "give the path of the environment's python (e.g. /path/to/venv/bin/python)")
    return os.path.abspath(found)


def scratch_folder(hidden: Sequence[str | os.PathLike]) -> str:
    """A new empty folder for the model's scratch space, under the first of the temporary folder,
    /var/tmp and the home folder that lies outside every `hidden` path (a hidden path is covered
    in the model's view, and its scratch folder with it); MusicbenchError if none does."""
    hidden_real = [os.path.realpath(path) for path in hidden]
    candidates = [tempfile.gettempdir(), "/var/tmp", os.path.expanduser("~")]
    for base in candidates:
        real = os.path.realpath(base)
        if os.path.isdir(real) and os.access(real, os.W_OK) and not any(
                real == h or real.startswith(h.rstrip("/") + "/") for h in hidden_real):
            return tempfile.mkdtemp(prefix="musicbench-model-", dir=real)
    raise MusicbenchError(f"no folder for the model's scratch space outside what it must not see (tried "
                          f"{', '.join(candidates)}); set TMPDIR to a writable folder outside the data root and the runs folder")


class ModelRunner:
    """A model file loaded in a subprocess; `call` runs one method with a timeout.

    Use as a context manager. `info` describes the model (see `musicbench.model_child.describe_model`)
    and how its process was confined (``confined``, ``confinement``: `musicbench.confine`); if loading
    failed, `load_error` holds the reason and every call fails with it. The model process sees nothing
    of `hide_paths` and may write only to its scratch space: confined, a tmpfs of `scratch_bytes`
    (and as much /dev/shm) over a new empty folder outside `hide_paths` (`scratch_folder`, removed by
    `close`, or by the janitor if the harness is killed); `confine=False` runs it unconfined
    (``--no-confine``, recorded as such), else confinement that cannot be had is a load error.
    `python` runs it under another interpreter (`python_interpreter`; it needs numpy only); `info`'s
    ``interpreter`` says which, with its python, numpy and torch versions.
    """

    def __init__(self, path: str | os.PathLike, options: dict[str, Any] | None = None, timeout: float = 60.0,
                 load_timeout: float = LOAD_TIMEOUT, hide_paths: Sequence[str | os.PathLike] = (),
                 confine: bool = True, python: str | os.PathLike | None = None, scratch_bytes: int = SCRATCH_BYTES):
        self.path, self.options = os.fspath(path), dict(options or {})
        self.python = python_interpreter(python)
        self.timeout, self.load_timeout = float(timeout), float(load_timeout)
        try:
            json.dumps(self.options)
        except (TypeError, ValueError) as exc:
            raise MusicbenchError(f"model options must be strings or numbers: {exc}") from None
        self.path = os.path.abspath(self.path)  # the model process starts in its scratch folder
        self.confine = confine
        self.scratch = scratch_folder(hide_paths)
        remove_if_killed(self.scratch)
        self.arguments = [arg for hidden in hide_paths for arg in ("--hide", os.path.abspath(hidden))]
        self.arguments += ["--scratch", self.scratch, "--scratch-bytes", str(int(scratch_bytes)), "--cwd", os.getcwd()]
        self.arguments += [] if confine else ["--no-confine"]
        self.arguments += [] if self.python == sys.executable else ["--python", self.python]
        self._process: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._request_id = 0
        self._output_left = MAX_MODEL_OUTPUT
        self.info: dict[str, Any] = {}
        self.load_error = ""
        self._start()

    def _start(self) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with child:
            self._process = subprocess.Popen(
                [sys.executable, "-I", MODEL_CHILD_FILE, "--fd", str(child.fileno()), "--parent-pid", str(os.getpid()),
                 *self.arguments],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, pass_fds=[child.fileno()],
                start_new_session=True, cwd=self.scratch, env=model_environment(self.scratch))
        threading.Thread(target=self._relay_output, args=(self._process.stderr,), daemon=True).start()
        self._sock = parent
        deadline = time.monotonic() + self.load_timeout
        late = f"loading the model took longer than {self.load_timeout:g} s (--load-timeout)"
        status, value = self._exchange(None, None, deadline, late, "confining the model process")
        if status == "ok":
            try:
                confinement = _checked_confinement(value)
            except ValueError as exc:
                status, value = "error", f"the model process sent a malformed answer: {exc}"
        if status == "ok" and self.confine and not confinement["confined"]:
            status, value = "error", NOT_CONFINED.format(detail=confinement["confinement"])
        if status == "ok":
            status, value = self._exchange(None, None, deadline, late, "starting the interpreter")
            if status == "error" and self.python != sys.executable and "died" in value:
                value += f"; check that {self.python} runs Python 3.9+ with numpy (`{self.python} -c 'import numpy'`)"
        if status == "ok":
            try:
                confinement.update(_checked_runtime(value))
            except ValueError as exc:
                status, value = "error", f"the model process sent a malformed answer: {exc}"
        if status == "ok":
            status, value = self._exchange({"load": self.path, "options": self.options}, None, deadline, late,
                                           "loading the model")
        if status == "ok":
            try:
                self.info, self.load_error = {**_checked_info(value.get("info"), self.options), **confinement}, ""
                return
            except ValueError as exc:
                value = f"the model process sent a malformed answer: {exc}"
        self.load_error = value
        self._stop()

    def _exchange(self, request: dict[str, Any] | None, arrays: dict[str, np.ndarray] | None, deadline: float,
                  late: str, what: str, max_arrays: int = 0) -> tuple[str, Any]:
        """Send a request (None: nothing), receive the answer, which must repeat the request's id and
        carry at most `max_arrays` float arrays: ("ok", header with its "frames") or ("error", one-line
        reason). Any answer refused here stops the process (restarted by the next call)."""
        request_id = None
        if request is not None:
            self._request_id += 1
            request_id = request["id"] = self._request_id
        try:
            if request is not None:
                send_message(self._sock, request, arrays, deadline)
            header, frames = recv_message(self._sock, MAX_HEADER_BYTES, MAX_ARRAY_BYTES, deadline,
                                          dtypes=RESULT_DTYPES, max_arrays=max_arrays)
            if header.get("id") != request_id:
                raise ValueError(f"an answer to request {str(header.get('id'))[:20]}, not to request {request_id}")
        except TimeoutError:
            self._stop()
            return "error", f"timeout: {late}"
        except (EOFError, ConnectionError, OSError):
            code = self._wait_exit()
            self._stop()
            return "error", f"the model process died while {what} ({describe_exit(code)})"
        except (ValueError, RecursionError) as exc:  # a malformed frame or JSON header
            self._stop()
            return "error", f"the model process sent a malformed answer while {what}: {_one_line(str(exc))}"
        if header.get("status") == "ok":
            return "ok", {**header, "frames": frames}
        return "error", _one_line(header.get("reason"))

    def _relay_output(self, pipe) -> None:
        """Show what the model prints (its stdout and stderr, one pipe) on the harness's stderr, as text
        (`plain` but for line breaks and tabs), at most `MAX_MODEL_OUTPUT` bytes per runner: the model
        never holds the harness's own stderr (a log file it could read or truncate)."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        with pipe:
            while chunk := pipe.read1(1 << 16):
                if self._output_left <= 0:
                    continue  # drained, so the model never blocks on a full pipe
                text = decoder.decode(chunk[:self._output_left])
                self._output_left -= len(chunk)
                shown = "\n".join("\t".join(map(plain, line.split("\t"))) for line in text.split("\n"))
                if self._output_left <= 0:
                    shown += f"\n(the model's output is cut here, after {MAX_MODEL_OUTPUT >> 20} MiB)\n"
                try:
                    sys.stderr.write(shown)
                    sys.stderr.flush()
                except (OSError, ValueError):  # the harness's stderr is closed
                    pass

    def _wait_exit(self) -> int | None:
        try:
            return self._process.wait(5)
        except subprocess.TimeoutExpired:
            return None

    def _stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            try:
                os.killpg(self._process.pid, signal.SIGKILL)  # the model's own subprocesses too
            except (ProcessLookupError, PermissionError):
                self._process.kill()
            self._wait_exit()
        if self._sock is not None:
            self._sock.close()
        self._process = self._sock = None

    def call(self, method: str, **kwargs: Any) -> CallResult:
        """Run ``model.method(**kwargs)`` in the subprocess (numpy arrays travel as raw bytes, the
        rest as JSON); restart it first if it had died."""
        if self._process is None:
            if self.load_error and not self.info:
                return CallResult(False, reason=self.load_error)
            self._start()
            if self.load_error:
                return CallResult(False, reason=self.load_error)
        arrays = {name: value for name, value in kwargs.items() if isinstance(value, np.ndarray)}
        plain = {name: value for name, value in kwargs.items() if name not in arrays}
        start = time.perf_counter()
        status, value = self._exchange({"call": method, "kwargs": plain}, arrays, time.monotonic() + self.timeout,
                                       f"running {method} took longer than {self.timeout:g} s (--timeout)",
                                       f"running {method}", max_arrays=1)
        seconds = time.perf_counter() - start
        if status != "ok":
            return CallResult(False, reason=value, seconds=seconds)
        if len(value["frames"]) != 1:
            self._stop()
            return CallResult(False, reason=f"the model process answered {method} with no array", seconds=seconds)
        entry, payload = value["frames"][0]
        return CallResult(True, array_from_frame(entry, payload), seconds=seconds)

    def close(self) -> None:
        """Ask the subprocess to stop, then make sure it has."""
        if self._sock is not None:
            try:
                send_message(self._sock, {"stop": True}, None, time.monotonic() + 5)
            except (TimeoutError, ConnectionError, OSError):
                pass
            if self._process is not None:
                self._wait_exit()
        self._stop()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            keep(self.scratch)
            self.scratch = None

    def __enter__(self) -> "ModelRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
