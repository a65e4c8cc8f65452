"""Files at the door: every file the tools read is bounded, UTF-8 and checked; every output is
checked writable before work starts.

Reading (:func:`read_json`): at most :data:`MAX_FILE_BYTES` bytes (``/dev/zero`` or a multi-GB
file is refused after reading that much), UTF-8 (a leading byte-order mark is allowed), no NUL
bytes, JSON nested at most :data:`MAX_JSON_DEPTH` deep, integer literals of at most
:data:`MAX_INT_DIGITS` digits (longer ones are read as floats, so a range check names them).
``-`` is standard input. Each refusal is an :class:`edgeft.errors.InputError` (exit 2) naming the
field (the flag or the file's role) and the path.

Writing (:func:`check_output_file`, :func:`check_output_dir`): the path is a file (or folder)
that can be created or replaced, in a folder that exists (folders: whose nearest existing
ancestor is a writable folder); :func:`write_text` reports a failed write (a full disk) as an
:class:`edgeft.errors.OutputError` (exit 2) naming the path.
"""

from __future__ import annotations

import codecs
import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from filelock import FileLock, Timeout

from edgeft.errors import InputError, OutputError

MAX_FILE_BYTES = 256 * 2**20  # 256 MiB: a scenario of about a million devices
MAX_JSON_DEPTH = 64
MAX_INT_DIGITS = 30
_STDIN: dict[str, bytes] = {}  # standard input, once read


def _parse_int(text: str):
    # Python refuses to convert more than 4,300 digits; a float keeps the magnitude (or inf),
    # so the range check downstream names the field.
    return int(text) if len(text.lstrip("-")) <= MAX_INT_DIGITS else float(text)


def _depth_ok(value, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return False
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child,
                                                                                dict | list))
    return True


def read_bytes(path, field: str, max_bytes: int | None = None) -> bytes:
    """The bytes of ``path`` (``-``: standard input), at most ``max_bytes`` of them (default
    :data:`MAX_FILE_BYTES`)."""
    max_bytes = MAX_FILE_BYTES if max_bytes is None else max_bytes
    name = str(path)
    if name == "":
        raise InputError(field, name, "a file path")
    if name == "-":
        if "-" not in _STDIN:  # read once: a command may look at its input twice
            stream = getattr(sys.stdin, "buffer", None)
            if stream is None:
                raise InputError(field, name, "standard input to read (it is closed)")
            _STDIN["-"] = stream.read(max_bytes + 1)
        data = _STDIN["-"]
    else:
        try:
            # Opened without blocking, so a FIFO nobody writes to reads as empty instead of
            # hanging; then read normally (a pipe with a writer, e.g. <(cmd), still works).
            fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK)
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
            with os.fdopen(fd, "rb") as f:
                data = f.read(max_bytes + 1)
        except IsADirectoryError:
            raise InputError(field, name, "a file, not a folder") from None
        except OSError as exc:
            raise InputError(field, name, f"a readable file ({exc.strerror})") from None
    if len(data) > max_bytes:
        raise InputError(field, name, f"a file of at most {max_bytes:,} bytes")
    return data


def decode_text(data: bytes, path, field: str) -> str:
    """UTF-8 text without NUL bytes (a leading UTF-8 byte-order mark is dropped)."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE,
                        codecs.BOM_UTF32_BE)):
        raise InputError(field, str(path), "UTF-8 text (this file is UTF-16 or UTF-32: "
                         "convert it, e.g. iconv -t UTF-8)")
    nul = data.find(b"\0")
    if nul >= 0:
        raise InputError(field, str(path), f"text without NUL bytes (one at byte {nul})")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(field, str(path), f"UTF-8 text (byte {data[exc.start]:#04x} at "
                         f"offset {exc.start} is not UTF-8)") from None


def parse_json(text: str, path, field: str, max_depth: int = MAX_JSON_DEPTH):
    """JSON with at most ``max_depth`` levels of nesting."""
    try:
        value = json.loads(text, parse_int=_parse_int)
    except json.JSONDecodeError as exc:
        raise InputError(field, str(path),
                         f"valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise InputError(field, str(path), f"JSON nested at most {max_depth} deep") from None
    if not _depth_ok(value, max_depth):
        raise InputError(field, str(path), f"JSON nested at most {max_depth} deep")
    return value


def read_json(path, field: str, max_bytes: int | None = None):
    """A JSON file read at the door (see the module docstring)."""
    data = read_bytes(path, field, max_bytes)
    text = decode_text(data, path, field)
    if not text.strip():
        raise InputError(field, str(path), "a JSON file (this one is empty)")
    return parse_json(text, path, field)


def check_output_file(path, field: str) -> Path:
    """``path`` can be written as a file: not a folder, its folder exists and is writable, and
    an existing file there is writable. Returns it as a Path."""
    out = Path(path)
    if str(path) == "":
        raise InputError(field, str(path), "a file path")
    if out.is_dir():
        raise InputError(field, str(path), "a file path, not a folder")
    parent = out.parent
    if not parent.is_dir():
        raise InputError(field, str(path), f"a path in an existing folder ({parent} is not one)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(field, str(path), f"a path in a writable folder ({parent} is not)")
    if out.exists() and not os.access(out, os.W_OK):
        raise InputError(field, str(path), "a writable file (this one is read-only)")
    return out


def check_apart(outputs: dict, inputs: dict) -> None:
    """No output path is another output's or an input's (``{field: path or paths}``): writing
    one must not destroy the other."""
    def real(path) -> str:
        return os.path.realpath(os.fspath(path))

    seen: dict[str, str] = {}
    for field, paths in inputs.items():
        for path in paths if isinstance(paths, list | tuple) else [paths]:
            if path is not None and str(path) not in ("", "-"):
                seen.setdefault(real(path), field)
    for field, path in outputs.items():
        if path is None or str(path) == "":
            continue
        other = seen.get(real(path))
        if other is not None:
            raise InputError(field, str(path), f"a path that is not also {other}'s (writing it "
                             "would destroy that)")
        seen[real(path)] = field


def check_output_dir(path, field: str) -> Path:
    """``path`` can hold outputs: an existing writable folder, or one that can be created
    under its nearest existing ancestor. Returns it as a Path (not created)."""
    out = Path(path)
    if str(path) == "":
        raise InputError(field, str(path), "a folder path")
    if out.exists() and not out.is_dir():
        raise InputError(field, str(path), "a folder (this is a file)")
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(field, str(path), f"a folder path ({probe} is a file)")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(field, str(path), f"a writable folder ({probe} is not writable)")
    return out


def json_safe(value):
    """``value`` with every non-finite float replaced by None, so it is strict JSON."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def json_text(value, **kwargs) -> str:
    """Strict JSON (no NaN or Infinity: they become null)."""
    return json.dumps(json_safe(value), allow_nan=False, **kwargs)


def read_json_lines(path, field: str, max_bytes: int | None = None) -> list:
    """A JSON-lines file; a last line cut short (no newline: a crash while writing it) is
    dropped, any other line that is not JSON is an :class:`InputError` naming its number."""
    text = decode_text(read_bytes(path, field, max_bytes), path, field)
    lines = text.split("\n")
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line, parse_int=_parse_int))
        except (json.JSONDecodeError, RecursionError):
            if number == len(lines):  # the last line, unterminated: cut short by a crash
                break
            raise InputError(field, str(path), f"one JSON object per line (line {number} is "
                             "not); delete the file's folder to start that run afresh") from None
    return out


def write_text(path, text: str) -> None:
    """Write ``text`` to ``path``; a failed write (a full disk) is an :class:`OutputError`."""
    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise OutputError(str(path), exc.strerror or str(exc)) from None


LOCK_FILE = ".edgeft.lock"


@contextlib.contextmanager
def folder_lock(folder, field: str = "out", command: str = ""):
    """Hold ``folder`` for this process (``filelock``): a second edgeft run into the same folder
    stops at once with an :class:`InputError` naming the holder, instead of writing every round
    twice. The folder is created if needed; a folder this call created and in which the run
    left nothing (it failed before writing) is removed again, not left behind holding only
    the lock file."""
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(folder / LOCK_FILE), timeout=0)
    owner = folder / (LOCK_FILE + ".owner")
    try:
        lock.acquire()
    except Timeout:
        try:
            who = json.loads(owner.read_text())
            held = (f"process {who.get('pid')} on {who.get('host')} since "
                    f"{who.get('since')}: {who.get('command') or 'edgeft'}")
        except (OSError, ValueError):
            held = "another process"
        raise InputError(field, str(folder), f"a folder no other run is using (held by {held}); "
                         "wait for it to finish, or pick another --out") from None
    try:
        with contextlib.suppress(OSError):
            owner.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                         "since": time.strftime("%Y-%m-%d %H:%M:%S"),
                                         "command": command}))
        yield folder
    finally:
        with contextlib.suppress(OSError):
            owner.unlink()
        empty = created and {p.name for p in folder.iterdir()} <= {LOCK_FILE}
        if empty:  # unlinked while held: no other run can be holding this file
            with contextlib.suppress(OSError):
                (folder / LOCK_FILE).unlink()
        lock.release()
        if empty:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if still empty
