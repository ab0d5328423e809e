"""Sandbox: one box, its commands and its files."""

import base64
import codecs
import dataclasses
import http.client
import json

from ._errors import ForkboxError, NotFound
from .client import Client, _seg


@dataclasses.dataclass
class CommandResult:
    """What a command printed and how it ended.

    ``stdout``/``stderr`` are the bytes decoded as UTF-8 (bad bytes become
    U+FFFD); ``stdout_bytes``/``stderr_bytes`` are exactly what it wrote.
    ``exit_code`` is docker style: 124 timeout, 126 cannot execute,
    127 not found, 128+N killed by signal N.
    """

    stdout: str
    stderr: str
    exit_code: int
    stdout_bytes: bytes = None
    stderr_bytes: bytes = None

    def __post_init__(self):
        if self.stdout_bytes is None:
            self.stdout_bytes = self.stdout.encode("utf-8")
        if self.stderr_bytes is None:
            self.stderr_bytes = self.stderr.encode("utf-8")


@dataclasses.dataclass(frozen=True)
class FileEntry:
    """One directory entry; ``type`` is file, dir, symlink or other."""

    name: str
    type: str
    mode: int
    size: int


class FileList(list):
    """FileEntry objects; ``truncated``: the daemon cut the list short."""

    truncated = False


class _Stream:
    """Collects one output stream and hands text to its callback."""

    def __init__(self, callback):
        self.callback = callback
        self.data = bytearray()
        # A multi-byte character can straddle two frames (the daemon sends
        # such a chunk as _b64): decode incrementally so the callback gets
        # the character whole, once.
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(self, data):
        self.data += data
        if self.callback is not None:
            text = self._decoder.decode(data)
            if text:
                self.callback(text)

    def finish(self):
        if self.callback is not None:
            text = self._decoder.decode(b"", final=True)
            if text:
                self.callback(text)
        return bytes(self.data)


def _read_frames(resp, on_stdout, on_stderr):
    streams = {"stdout": _Stream(on_stdout), "stderr": _Stream(on_stderr)}
    while True:
        try:
            # readline returns as soon as a line is in, chunked or not: the
            # callbacks see output while the command still runs.
            line = resp.readline()
        except (OSError, http.client.HTTPException) as e:
            raise ForkboxError(f"command output stream broke: {e!r}") from e
        if not line:
            raise ForkboxError("command output stream ended without an "
                               "exit code")
        line = line.strip()
        if not line:
            continue
        try:
            frame = json.loads(line)
            if not isinstance(frame, dict):
                raise TypeError("not an object")
            pieces = []
            for name in streams:
                if name in frame:
                    pieces.append((name, frame[name].encode(
                        "utf-8", "surrogatepass")))
                if name + "_b64" in frame:
                    pieces.append((name, base64.b64decode(
                        frame[name + "_b64"], validate=True)))
            exit_code = frame.get("exit_code")
            if exit_code is not None:
                exit_code = int(exit_code)
        except (ValueError, TypeError, AttributeError) as e:
            raise ForkboxError(
                f"bad frame in command output: {line[:200]!r}") from e
        for name, data in pieces:
            streams[name].feed(data)
        if "error" in frame:
            raise ForkboxError(str(frame["error"]))
        if exit_code is not None:
            out = streams["stdout"].finish()
            err = streams["stderr"].finish()
            return CommandResult(out.decode("utf-8", "replace"),
                                 err.decode("utf-8", "replace"),
                                 exit_code, out, err)
        # Any other key is a frame kind this SDK does not know yet: skip it.


def _cmd_field(cmd):
    if isinstance(cmd, str):
        return cmd
    if isinstance(cmd, (bytes, bytearray)):
        raise TypeError("cmd is a str or a list of str, not bytes")
    argv = [str(a) for a in cmd]
    if not argv:
        raise ValueError("cmd is an empty list")
    return argv


class Commands:
    """``sb.commands``: run commands in the box."""

    def __init__(self, sandbox):
        self._sb = sandbox

    def run(self, cmd, env=None, cwd=None, stdin=None, timeout_s=None,
            on_stdout=None, on_stderr=None):
        """Run ``cmd`` and wait for it; return a CommandResult.

        ``cmd`` is a str (run by /bin/sh -c) or an argv list. ``stdin`` is a
        str or bytes; it travels as a JSON string, so bytes must be valid
        UTF-8 (arbitrary binary input does not fit the API: write it to a
        file with ``files.write`` and redirect from it). ``on_stdout`` and
        ``on_stderr`` are called with each piece of text as it comes. A
        non-zero exit is no error; forkbox failing to run the command to its
        end raises ForkboxError.
        """
        body = {"cmd": _cmd_field(cmd)}
        if env is not None:
            body["env"] = {str(k): str(v) for k, v in env.items()}
        if cwd is not None:
            body["cwd"] = str(cwd)
        if stdin is not None:
            if isinstance(stdin, (bytes, bytearray, memoryview)):
                try:
                    stdin = bytes(stdin).decode("utf-8")
                except UnicodeDecodeError as e:
                    raise ValueError("stdin bytes must be valid UTF-8 (the "
                                     "API carries stdin as a JSON string)"
                                     ) from e
            body["stdin"] = stdin
        timeout = None
        if timeout_s is not None:
            body["timeout_s"] = int(timeout_s)
            # A quiet command may print nothing for timeout_s seconds: wait
            # at least that long for the next frame.
            if self._sb.client.timeout is not None:
                timeout = max(self._sb.client.timeout, timeout_s + 30)
        conn, resp = self._sb.client._t.open(
            "POST", self._sb._path("/exec"), json_body=body, timeout=timeout)
        try:
            result = _read_frames(resp, on_stdout, on_stderr)
            # Read the stream to its end so the daemon sees its response
            # taken whole rather than a broken pipe; briefly, as nothing is
            # owed after the exit code.
            try:
                resp.fb_socket.settimeout(2.0)
                resp.read()
            except (OSError, http.client.HTTPException):
                pass
            return result
        finally:
            resp.close()
            conn.close()


class Files:
    """``sb.files``: read, write and list files in the box."""

    def __init__(self, sandbox):
        self._sb = sandbox

    def write(self, path, data, mode=0o644):
        """Write ``data`` (str as UTF-8, or bytes) to ``path``, atomically."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        else:
            data = bytes(data)
        mode = mode if isinstance(mode, str) else format(mode, "04o")
        self._sb.client._t.request("PUT", self._sb._path("/files"),
                                   query={"path": str(path), "mode": mode},
                                   body=data)

    def read(self, path):
        """The bytes of the regular file at ``path``."""
        _, data = self._sb.client._t.request(
            "GET", self._sb._path("/files"), query={"path": str(path)})
        return data

    def list(self, path):
        """The entries of directory ``path``: a FileList of FileEntry."""
        doc = self._sb.client._t.json("GET", self._sb._path("/files/list"),
                                      query={"path": str(path)}) or {}
        out = FileList(FileEntry(e.get("name", ""), e.get("type", "other"),
                                 e.get("mode", 0), e.get("size", 0))
                       for e in doc.get("entries") or [])
        out.truncated = bool(doc.get("truncated", False))
        return out


class Sandbox:
    """One box. ``with Sandbox.create(...) as sb:`` kills it on exit."""

    def __init__(self, client, info):
        if not isinstance(info, dict) or not info.get("id"):
            raise ForkboxError(f"forkboxd sent a box without an id: {info!r}")
        self.client = client
        self.info = info
        self.commands = Commands(self)
        self.files = Files(self)
        self._killed = False

    @classmethod
    def create(cls, image=None, pool=None, snapshot=None, name=None,
               cpus=None, mem_mib=None, ksm=None, timeout_s=None,
               idle_timeout_s=None, client=None):
        """Make a box and return once it is ready.

        Only the arguments given are sent; the daemon fills in the rest.
        With ``pool``, a ready box is taken from that warm pool.
        """
        client = client or Client()
        fields = {"image": image, "pool": pool, "snapshot": snapshot,
                  "name": name, "cpus": cpus, "mem_mib": mem_mib, "ksm": ksm,
                  "timeout_s": timeout_s, "idle_timeout_s": idle_timeout_s}
        body = {k: v for k, v in fields.items() if v is not None}
        return cls(client, client._t.json("POST", "/v1/boxes",
                                          json_body=body))

    @classmethod
    def connect(cls, box_id, client=None):
        """The existing box named by id, unique id prefix, or name."""
        client = client or Client()
        return cls(client, client._t.json("GET", f"/v1/boxes/{_seg(box_id)}"))

    @property
    def id(self):
        return self.info["id"]

    @property
    def name(self):
        return self.info.get("name")

    @property
    def state(self):
        return self.info.get("state")

    def __repr__(self):
        return f"<forkbox.Sandbox {self.id} {self.state}>"

    def _path(self, suffix=""):
        return f"/v1/boxes/{_seg(self.id)}{suffix}"

    def refresh(self):
        """Fetch ``info`` afresh; return self."""
        self.info = self.client._t.json("GET", self._path())
        return self

    def fork(self, n=1):
        """``n`` children of this running box, each ready: list of Sandbox."""
        doc = self.client._t.json("POST", self._path("/fork"),
                                  json_body={"n": int(n)}) or {}
        return [Sandbox(self.client, c) for c in doc.get("children") or []]

    def snapshot(self, path=None, diff=False):
        """Snapshot the box, which runs on: {"path": ..., "detail": ...}."""
        body = {}
        if path is not None:
            body["path"] = str(path)
        if diff:
            body["diff"] = True
        return self.client._t.json("POST", self._path("/snapshot"),
                                   json_body=body)

    def pause(self):
        """Park the box's vCPUs; return self."""
        self.info = self.client._t.json("POST", self._path("/pause"))
        return self

    def resume(self):
        """Run a paused box again; return self."""
        self.info = self.client._t.json("POST", self._path("/resume"))
        return self

    def kill(self):
        """Stop the box and remove all it had. Killing it twice is fine."""
        if self._killed:
            return
        try:
            self.client._t.request("DELETE", self._path())
        except NotFound:
            pass  # gone already (its timeout, or someone else): the goal
        self._killed = True
        self.info["state"] = "dead"

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.kill()
            return
        # The body's exception says more than a failed cleanup would: do
        # not let the latter replace it.
        try:
            self.kill()
        except ForkboxError:
            pass
