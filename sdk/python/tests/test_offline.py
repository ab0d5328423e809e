"""SDK tests against a fake forkboxd in a thread: no daemon, no VM."""

import base64
import http.server
import json
import os
import pathlib
import socket
import socketserver
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
from unittest import mock

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import forkbox  # noqa: E402
from forkbox import (Client, Conflict, FileEntry, ForkboxError,  # noqa: E402
                     NotFound, PoolExhausted, Sandbox)


class FakeState:
    """What the fake daemon holds and what it saw."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []  # dicts: method, raw, path, query, headers, body
        self.boxes = {}
        self.files = {}         # (box id, path) -> (bytes, mode str)
        self.token = None
        self.exec_script = None  # callable(handler): writes an exec response
        self.next_id = 1

    def new_box(self, name=None, **extra):
        with self.lock:
            box_id = f"b{self.next_id:04d}cafe"
            self.next_id += 1
        box = {"id": box_id, "name": name or box_id, "state": "running",
               "pid": 4242, "ready_ms": 12.5, **extra}
        self.boxes[box_id] = box
        return box

    def seen(self, method=None, path=None):
        return [r for r in self.requests
                if (method is None or r["method"] == method)
                and (path is None or r["path"] == path)]


class FakeHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # An AF_UNIX peer has no (host, port); logging and error pages want
        # one.
        if not isinstance(self.client_address, tuple) or \
                len(self.client_address) < 2:
            self.client_address = ("unix", 0)

    def log_message(self, fmt, *args):
        pass

    # --- replies -------------------------------------------------------

    def reply(self, status, doc=None, raw=None, ctype="application/json"):
        data = raw if raw is not None else (
            b"" if doc is None else json.dumps(doc).encode())
        self.send_response(status)
        if data or status != 204:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def error(self, status, message):
        self.reply(status, {"error": message})

    def start_chunked(self):
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def chunk(self, data):
        if isinstance(data, dict):
            data = json.dumps(data).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_chunked(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # --- routing -------------------------------------------------------

    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_DELETE = do_GET

    def dispatch(self):
        st = self.server.state
        url = urllib.parse.urlsplit(self.path)
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        segs = [urllib.parse.unquote(s) for s in url.path.split("/")[1:]]
        self.req = {"method": self.command, "raw": self.path,
                    "path": "/" + "/".join(segs),
                    "query": dict(urllib.parse.parse_qsl(url.query)),
                    "headers": dict(self.headers), "body": body}
        st.requests.append(self.req)
        if st.token is not None and \
                self.headers.get("Authorization") != f"Bearer {st.token}":
            return self.error(401, "bad or missing bearer token")
        self.json = json.loads(body) if body and self.headers.get(
            "Content-Type") == "application/json" else None
        m = self.command
        if segs == ["metrics"] and m == "GET":
            return self.reply(200, raw=b"forkbox_boxes{state=\"running\"} 1\n",
                              ctype="text/plain")
        if segs[:1] != ["v1"]:
            return self.error(404, "no such route")
        segs = segs[1:]
        if segs == ["health"]:
            return self.reply(200, {"ok": True, "version": "fake",
                                    "boxes": len(st.boxes)})
        if segs == ["boxes"] and m == "GET":
            return self.reply(200, {"boxes": list(st.boxes.values())})
        if segs == ["boxes"] and m == "POST":
            return self.create_box()
        if segs[:1] == ["boxes"] and len(segs) >= 2:
            return self.box_route(segs[1], segs[2:])
        if segs == ["pools"] and m == "POST":
            return self.reply(201, dict(self.json, template="",
                                        state="starting", idle=[],
                                        handed_out=0))
        if segs[:1] == ["pools"] and len(segs) == 2:
            if segs[1] != "warm":
                return self.error(404, f"no pool {segs[1]}")
            if m == "DELETE":
                return self.reply(204)
            return self.reply(200, {"name": "warm", "state": "ready",
                                    "idle": ["b9999cafe"], "handed_out": 0})
        if segs == ["images"] and m == "GET":
            return self.reply(200, {"images": [{"name": "base"}]})
        if segs == ["images"] and m == "POST":
            return self.reply(201, {"name": self.json["name"]})
        return self.error(404, "no such route")

    def create_box(self):
        st, req = self.server.state, self.json or {}
        if req.get("pool") == "empty":
            return self.error(429, "pool empty has 16 boxes out and none idle")
        if req.get("image") == "missing":
            return self.error(404, "no image named missing")
        return self.reply(201, st.new_box(req.get("name")))

    def box_route(self, key, rest):
        st, m = self.server.state, self.command
        box = st.boxes.get(key) or next(
            (b for b in st.boxes.values() if b["name"] == key), None)
        if box is None:
            return self.error(404, f"no box {key}")
        if not rest and m == "GET":
            return self.reply(200, box)
        if not rest and m == "DELETE":
            del st.boxes[box["id"]]
            return self.reply(204)
        if rest in (["pause"], ["resume"]) and m == "POST":
            want = "paused" if rest == ["pause"] else "running"
            if box["state"] == want:
                return self.error(409, f"box {box['id']} is {want} already")
            box["state"] = want
            return self.reply(200, box)
        if rest == ["fork"] and m == "POST":
            kids = [st.new_box() for _ in range((self.json or {}).get("n", 1))]
            return self.reply(201, {"children": kids, "pause_ms": 3.0,
                                    "total_ms": 40.0})
        if rest == ["snapshot"] and m == "POST":
            path = (self.json or {}).get("path") or f"/snap/{box['id']}-1"
            return self.reply(201, {"path": path, "detail": "full"})
        if rest == ["exec"] and m == "POST":
            if box["state"] == "paused":
                return self.error(409, "box is paused")
            if st.exec_script is None:
                self.start_chunked()
                self.chunk({"exit_code": 0})
                return self.end_chunked()
            return st.exec_script(self)
        path = self.req["query"].get("path")
        if rest == ["files"] and m == "PUT":
            st.files[(box["id"], path)] = (self.req["body"],
                                           self.req["query"].get("mode"))
            return self.reply(204)
        if rest == ["files"] and m == "GET":
            if (box["id"], path) not in st.files:
                return self.error(404, f"no file {path}")
            return self.reply(200, raw=st.files[(box["id"], path)][0],
                              ctype="application/octet-stream")
        if rest == ["files", "list"] and m == "GET":
            entries = [{"name": p.rsplit("/", 1)[1], "type": "file",
                        "mode": int(md, 8), "size": len(data)}
                       for (bid, p), (data, md) in sorted(st.files.items())
                       if bid == box["id"] and p.rsplit("/", 1)[0] == path]
            return self.reply(200, {"entries": entries, "truncated": False})
        return self.error(404, "no such route")


class FakeServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # Tests that make the client drop a stream early leave the fake's
        # last write with a broken pipe: expected, and not worth a traceback.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError,
                                              ConnectionResetError)):
            super().handle_error(request, client_address)


class UnixThreadingHTTPServer(FakeServer):
    address_family = socket.AF_UNIX

    def server_bind(self):
        # HTTPServer.server_bind wants a (host, port) address to name itself.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "localhost", 0


class FakeDaemonTest(unittest.TestCase):
    """Each test gets a fresh fake daemon on a Unix socket."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.sock_path = os.path.join(self.tmp.name, "forkboxd.sock")
        self.server = self.serve(UnixThreadingHTTPServer(self.sock_path,
                                                         FakeHandler))
        self.state = self.server.state
        self.client = Client(socket_path=self.sock_path, timeout=10)

    def serve(self, server):
        server.state = FakeState()
        thread = threading.Thread(target=server.serve_forever,
                                  kwargs={"poll_interval": 0.02}, daemon=True)
        thread.start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        return server


class TestBasics(FakeDaemonTest):

    def test_health_and_metrics(self):
        self.assertEqual(self.client.health()["version"], "fake")
        self.assertIn("forkbox_boxes", self.client.metrics())
        self.assertEqual(self.state.requests[0]["path"], "/v1/health")
        self.assertEqual(self.state.requests[1]["path"], "/metrics")

    def test_boxes_images_pools(self):
        self.state.new_box("one")
        boxes = self.client.boxes()
        self.assertEqual([b.name for b in boxes], ["one"])
        self.assertIsInstance(boxes[0], Sandbox)
        self.assertEqual(self.client.images(), [{"name": "base"}])
        self.assertEqual(self.client.build_image("py", builtin=True),
                         {"name": "py"})
        self.assertEqual(self.state.requests[-1]["body"],
                         b'{"name": "py", "builtin": true}')
        pool = self.client.create_pool("warm", min_idle=2)
        self.assertEqual(pool["state"], "starting")
        self.assertEqual(json.loads(self.state.requests[-1]["body"]),
                         {"name": "warm", "image": "base", "min_idle": 2,
                          "max": 16, "idle_ttl_s": 0, "cpus": 1,
                          "mem_mib": 256})
        self.assertEqual(self.client.get_pool("warm")["idle"], ["b9999cafe"])
        self.client.delete_pool("warm")
        with self.assertRaises(NotFound):
            self.client.get_pool("cold")

    def test_create_sends_only_given_fields(self):
        Sandbox.create(client=self.client)
        Sandbox.create(image="base", cpus=2, ksm=False, timeout_s=0,
                       client=self.client)
        Sandbox.create(pool="warm", name="p1", client=self.client)
        bodies = [json.loads(r["body"])
                  for r in self.state.seen("POST", "/v1/boxes")]
        self.assertEqual(bodies, [
            {},
            # False and 0 are values given, not absent ones.
            {"image": "base", "cpus": 2, "ksm": False, "timeout_s": 0},
            {"pool": "warm", "name": "p1"},
        ])

    def test_create_connect_refresh(self):
        sb = Sandbox.create(name="web", client=self.client)
        self.assertEqual((sb.name, sb.state), ("web", "running"))
        self.assertEqual(sb.info["pid"], 4242)
        again = Sandbox.connect("web", client=self.client)
        self.assertEqual(again.id, sb.id)
        self.state.boxes[sb.id]["state"] = "paused"
        self.assertIs(sb.refresh(), sb)
        self.assertEqual(sb.state, "paused")

    def test_pause_resume_fork_snapshot(self):
        sb = Sandbox.create(client=self.client)
        self.assertEqual(sb.pause().state, "paused")
        self.assertEqual(sb.resume().state, "running")
        kids = sb.fork(3)
        self.assertEqual(len(kids), 3)
        self.assertEqual(len({k.id for k in kids} | {sb.id}), 4)
        self.assertEqual(json.loads(self.state.requests[-1]["body"]), {"n": 3})
        snap = sb.snapshot()
        self.assertEqual(snap["path"], f"/snap/{sb.id}-1")
        self.assertEqual(self.state.requests[-1]["body"], b"{}")
        sb.snapshot(path="/x/y", diff=True)
        self.assertEqual(json.loads(self.state.requests[-1]["body"]),
                         {"path": "/x/y", "diff": True})

    def test_default_socket_path(self):
        with mock.patch.dict(os.environ, {"FORKBOX_SOCKET": "/s/d.sock",
                                          "FORKBOX_HOME": "/h"}):
            self.assertEqual(forkbox.default_socket_path(), "/s/d.sock")
        with mock.patch.dict(os.environ, {"FORKBOX_HOME": "/h"}):
            os.environ.pop("FORKBOX_SOCKET", None)
            self.assertEqual(forkbox.default_socket_path(),
                             "/h/forkboxd.sock")
        with mock.patch.dict(os.environ, {"HOME": "/home/u"}):
            os.environ.pop("FORKBOX_SOCKET", None)
            os.environ.pop("FORKBOX_HOME", None)
            self.assertEqual(forkbox.default_socket_path(),
                             "/home/u/.local/share/forkbox/forkboxd.sock")
        with mock.patch.dict(os.environ, {"FORKBOX_SOCKET": self.sock_path}):
            self.assertEqual(Client().health()["ok"], True)

    def test_unreachable_daemon(self):
        c = Client(socket_path=os.path.join(self.tmp.name, "nobody.sock"))
        with self.assertRaises(ForkboxError) as cm:
            c.health()
        self.assertIsNone(cm.exception.status)
        self.assertIn("nobody.sock", str(cm.exception))


class TestErrors(FakeDaemonTest):

    def test_404_not_found(self):
        with self.assertRaises(NotFound) as cm:
            Sandbox.connect("nope", client=self.client)
        self.assertEqual(cm.exception.status, 404)
        self.assertEqual(cm.exception.message, "no box nope")
        self.assertEqual(str(cm.exception), "no box nope")
        self.assertIsInstance(cm.exception, ForkboxError)
        with self.assertRaises(NotFound) as cm:
            Sandbox.create(image="missing", client=self.client)
        self.assertEqual(cm.exception.message, "no image named missing")

    def test_409_conflict(self):
        sb = Sandbox.create(client=self.client)
        sb.pause()
        with self.assertRaises(Conflict) as cm:
            sb.pause()
        self.assertEqual(cm.exception.status, 409)
        self.assertEqual(cm.exception.message,
                         f"box {sb.id} is paused already")
        with self.assertRaises(Conflict) as cm:
            sb.commands.run("true")
        self.assertEqual(cm.exception.message, "box is paused")

    def test_429_pool_exhausted(self):
        with self.assertRaises(PoolExhausted) as cm:
            Sandbox.create(pool="empty", client=self.client)
        self.assertEqual(cm.exception.status, 429)
        self.assertEqual(cm.exception.message,
                         "pool empty has 16 boxes out and none idle")

    def test_other_status_and_non_json_body(self):
        def script(h):
            h.reply(500, raw=b"upstream exploded\n", ctype="text/plain")
        self.state.exec_script = script
        sb = Sandbox.create(client=self.client)
        with self.assertRaises(ForkboxError) as cm:
            sb.commands.run("true")
        self.assertIs(type(cm.exception), ForkboxError)
        self.assertEqual(cm.exception.status, 500)
        self.assertEqual(cm.exception.message, "upstream exploded")


class TestExec(FakeDaemonTest):

    def setUp(self):
        super().setUp()
        self.sb = Sandbox.create(client=self.client)

    def test_request_body(self):
        self.sb.commands.run(["ls", "-l", "/"], env={"A": "1"}, cwd="/tmp",
                             stdin=b"in\n", timeout_s=5)
        self.sb.commands.run("echo hi")
        bodies = [json.loads(r["body"]) for r in self.state.seen("POST")
                  if r["path"].endswith("/exec")]
        self.assertEqual(bodies, [
            {"cmd": ["ls", "-l", "/"], "env": {"A": "1"}, "cwd": "/tmp",
             "stdin": "in\n", "timeout_s": 5},
            {"cmd": "echo hi"},
        ])
        with self.assertRaises(ValueError):
            self.sb.commands.run("cat", stdin=b"\xff")
        with self.assertRaises(ValueError):
            self.sb.commands.run([])

    def test_streaming_callbacks_in_order(self):
        first_seen = threading.Event()
        waited = []

        def script(h):
            h.start_chunked()
            h.chunk({"stdout": "one\n"})
            # Only go on once the client has handed the first frame to its
            # callback: proves it reads frames as they come, not at the end.
            waited.append(first_seen.wait(5))
            h.chunk({"stderr": "two\n"})
            h.chunk({"stdout_b64": base64.b64encode(b"\xff\n").decode()})
            # One character split over two frames, as the daemon must send
            # a chunk that ends mid-character.
            h.chunk({"stdout_b64": base64.b64encode(b"caf\xc3").decode()})
            h.chunk({"stdout_b64": base64.b64encode(b"\xa9\n").decode()})
            # Two frames in one chunk, then one frame over two chunks.
            h.chunk(b'{"stderr": "three\\n"}\n{"stdout": "four\\n"}\n')
            h.chunk(b'{"stdout": "fi')
            h.chunk(b've\\n"}\n')
            h.chunk({"exit_code": 7})
            h.end_chunked()
        self.state.exec_script = script

        seen = []

        def on_out(text):
            seen.append(("out", text))
            first_seen.set()

        res = self.sb.commands.run("x", on_stdout=on_out,
                                   on_stderr=lambda t: seen.append(("err", t)))
        self.assertEqual(waited, [True])
        self.assertEqual(seen, [("out", "one\n"), ("err", "two\n"),
                                ("out", "\ufffd\n"), ("out", "caf"),
                                ("out", "\u00e9\n"), ("err", "three\n"),
                                ("out", "four\n"), ("out", "five\n")])
        self.assertEqual(res.exit_code, 7)
        self.assertEqual(res.stdout_bytes,
                         b"one\n\xff\ncaf\xc3\xa9\nfour\nfive\n")
        self.assertEqual(res.stdout, "one\n\ufffd\ncaf\u00e9\nfour\nfive\n")
        self.assertEqual(res.stderr, "two\nthree\n")
        self.assertEqual(res.stderr_bytes, b"two\nthree\n")

    def test_missing_exit_frame_raises(self):
        def script(h):
            h.start_chunked()
            h.chunk({"stdout": "partial\n"})
            h.end_chunked()
        self.state.exec_script = script
        seen = []
        with self.assertRaises(ForkboxError) as cm:
            self.sb.commands.run("x", on_stdout=seen.append)
        self.assertIsNone(cm.exception.status)
        self.assertIn("exit code", cm.exception.message)
        self.assertEqual(seen, ["partial\n"])

    def test_broken_stream_raises(self):
        def script(h):
            h.start_chunked()
            h.chunk({"stdout": "partial\n"})
            h.wfile.write(b"40\r\n{\"stdout\": ")  # then the peer vanishes
            h.wfile.flush()
            h.close_connection = True
        self.state.exec_script = script
        with self.assertRaises(ForkboxError):
            self.sb.commands.run("x")

    def test_error_frame_raises(self):
        def script(h):
            h.start_chunked()
            h.chunk({"stdout": "started\n"})
            h.chunk({"error": "the agent went away"})
            h.end_chunked()
        self.state.exec_script = script
        with self.assertRaises(ForkboxError) as cm:
            self.sb.commands.run("x")
        self.assertIs(type(cm.exception), ForkboxError)
        self.assertEqual(cm.exception.message, "the agent went away")

    def test_bad_frames_raise(self):
        for bad in (b"not json\n", b"[1]\n", b'{"stdout": 5}\n',
                    b'{"stdout_b64": "@@@"}\n', b'{"exit_code": "x"}\n'):
            def script(h, bad=bad):
                h.start_chunked()
                h.chunk(bad)
                h.chunk({"exit_code": 0})
                h.end_chunked()
            self.state.exec_script = script
            with self.assertRaises(ForkboxError, msg=bad) as cm:
                self.sb.commands.run("x")
            self.assertIn("bad frame", cm.exception.message)

    def test_unknown_frames_are_skipped(self):
        def script(h):
            h.start_chunked()
            h.chunk({"progress": 1})
            h.chunk({"stdout": "a"})
            h.chunk({"exit_code": 0})
            h.end_chunked()
        self.state.exec_script = script
        self.assertEqual(self.sb.commands.run("x").stdout, "a")

    def test_no_long_wait_after_exit_frame(self):
        release = threading.Event()
        self.addCleanup(release.set)

        def script(h):
            h.start_chunked()
            h.chunk({"exit_code": 0})
            release.wait(20)  # the stream's end is owed, but late
            h.end_chunked()
        self.state.exec_script = script
        t0 = time.monotonic()
        self.assertEqual(self.sb.commands.run("x").exit_code, 0)
        self.assertLess(time.monotonic() - t0, 10)

    def test_not_chunked_stream(self):
        # A daemon may as well send Content-Length, or close to end.
        def script(h):
            h.reply(200, raw=b'{"stdout":"a"}\n{"exit_code":0}\n',
                    ctype="application/x-ndjson")
        self.state.exec_script = script
        res = self.sb.commands.run("x")
        self.assertEqual((res.stdout, res.stderr, res.exit_code), ("a", "", 0))


class TestFiles(FakeDaemonTest):

    def test_write_raw_bytes_quoted_path_and_mode(self):
        sb = Sandbox.create(client=self.client)
        data = bytes(range(256))
        sb.files.write("/tmp/a b+c%d.bin", data, mode=0o600)
        req = self.state.requests[-1]
        self.assertEqual(req["method"], "PUT")
        self.assertEqual(req["raw"], f"/v1/boxes/{sb.id}/files"
                         "?path=/tmp/a%20b%2Bc%25d.bin&mode=0600")
        self.assertEqual(req["query"], {"path": "/tmp/a b+c%d.bin",
                                        "mode": "0600"})
        self.assertEqual(req["body"], data)
        self.assertEqual(req["headers"]["Content-Type"],
                         "application/octet-stream")
        self.assertEqual(sb.files.read("/tmp/a b+c%d.bin"), data)

        sb.files.write("/tmp/t.txt", "h\u00e9")
        self.assertEqual(self.state.requests[-1]["query"]["mode"], "0644")
        self.assertEqual(self.state.requests[-1]["body"], b"h\xc3\xa9")
        sb.files.write("/tmp/empty", b"")
        self.assertEqual(sb.files.read("/tmp/empty"), b"")

        entries = sb.files.list("/tmp")
        self.assertFalse(entries.truncated)
        self.assertIn(FileEntry("a b+c%d.bin", "file", 0o600, 256), entries)
        self.assertIn(FileEntry("t.txt", "file", 0o644, 3), entries)
        with self.assertRaises(NotFound):
            sb.files.read("/nope")


class TestTcp(unittest.TestCase):

    def setUp(self):
        self.server = FakeServer(("127.0.0.1", 0), FakeHandler)
        self.server.state = FakeState()
        self.server.state.token = "s3cret"
        threading.Thread(target=self.server.serve_forever,
                         kwargs={"poll_interval": 0.02}, daemon=True).start()
        self.addCleanup(self.server.server_close)
        self.addCleanup(self.server.shutdown)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]

    def test_bearer_token(self):
        c = Client(url=self.url, token="s3cret", timeout=10)
        self.assertTrue(c.health()["ok"])
        sb = Sandbox.create(client=c)
        sb.kill()
        for r in self.server.state.requests:
            self.assertEqual(r["headers"]["Authorization"], "Bearer s3cret")
        self.assertEqual(self.server.state.requests[0]["path"], "/v1/health")

    def test_bad_token(self):
        for token in ("wrong", None):
            with self.assertRaises(ForkboxError) as cm:
                Client(url=self.url, token=token, timeout=10).health()
            self.assertEqual(cm.exception.status, 401)
            self.assertEqual(cm.exception.message,
                             "bad or missing bearer token")
        self.assertNotIn("Authorization",
                         self.server.state.requests[-1]["headers"])

    def test_bad_arguments(self):
        with self.assertRaises(ValueError):
            Client(url="ftp://x")
        with self.assertRaises(ValueError):
            Client(url=self.url, socket_path="/x.sock")


class TestKill(FakeDaemonTest):

    def deletes(self, box_id):
        return self.state.seen("DELETE", f"/v1/boxes/{box_id}")

    def test_context_manager_kills_once(self):
        with Sandbox.create(client=self.client) as sb:
            self.assertIn(sb.id, self.state.boxes)
        self.assertNotIn(sb.id, self.state.boxes)
        self.assertEqual(len(self.deletes(sb.id)), 1)
        self.assertEqual(sb.state, "dead")

        with Sandbox.create(client=self.client) as sb2:
            sb2.kill()
        self.assertEqual(len(self.deletes(sb2.id)), 1)

    def test_context_manager_kills_on_exception(self):
        with self.assertRaises(ZeroDivisionError):
            with Sandbox.create(client=self.client) as sb:
                1 / 0
        self.assertEqual(len(self.deletes(sb.id)), 1)
        self.assertNotIn(sb.id, self.state.boxes)

    def test_kill_gone_box_is_quiet(self):
        sb = Sandbox.create(client=self.client)
        other = Sandbox.connect(sb.id, client=self.client)
        other.kill()
        sb.kill()  # the daemon answers 404
        sb.kill()  # and this one is not even sent
        self.assertEqual(len(self.deletes(sb.id)), 2)
        with self.assertRaises(NotFound):
            Sandbox.connect(sb.id, client=self.client)


if __name__ == "__main__":
    unittest.main()
