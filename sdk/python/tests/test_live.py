"""SDK tests against a running forkboxd.

Skipped unless FORKBOX_SDK_LIVE=1. The daemon is found as Client() finds it
($FORKBOX_SOCKET, else $FORKBOX_HOME/forkboxd.sock), or over TCP with
FORKBOX_SDK_URL (and FORKBOX_SDK_TOKEN). Boxes boot from FORKBOX_SDK_IMAGE
(default base). Lab guests are slow: a cold create may take 10-20 s.
"""

import os
import pathlib
import shutil
import sys
import time
import unittest
import uuid

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from forkbox import Client, ForkboxError, NotFound, Sandbox  # noqa: E402

LIVE = os.environ.get("FORKBOX_SDK_LIVE") == "1"
IMAGE = os.environ.get("FORKBOX_SDK_IMAGE") or "base"
URL = os.environ.get("FORKBOX_SDK_URL")
POOL_DEADLINE_S = 300


def make_client():
    if URL:
        return Client(url=URL, token=os.environ.get("FORKBOX_SDK_TOKEN"),
                      timeout=600)
    return Client(timeout=600)


@unittest.skipUnless(LIVE, "needs a running forkboxd: set FORKBOX_SDK_LIVE=1 "
                     "(and FORKBOX_SOCKET or FORKBOX_SDK_URL if not the "
                     "default socket)")
class LiveTest(unittest.TestCase):

    def setUp(self):
        self.client = make_client()

    def box(self, **kw):
        """A new box, killed when the test ends however it ends."""
        kw.setdefault("image", IMAGE)
        sb = Sandbox.create(client=self.client, **kw)
        self.addCleanup(sb.kill)
        return sb

    def test_health(self):
        self.assertTrue(self.client.health()["ok"])

    def test_run_output_and_exit_code(self):
        sb = self.box()
        self.assertEqual(sb.state, "running")
        res = sb.commands.run("echo hi; echo err >&2; exit 3")
        self.assertEqual(res.stdout, "hi\n")
        self.assertEqual(res.stderr, "err\n")
        self.assertEqual(res.exit_code, 3)
        res = sb.commands.run(["/bin/sh", "-c", 'printf %s "$X"; cat'],
                              env={"X": "x="}, stdin="in")
        self.assertEqual((res.stdout, res.exit_code), ("x=in", 0))

    def test_streaming_callbacks_in_order(self):
        sb = self.box()
        chunks = []
        res = sb.commands.run("for i in 1 2 3; do echo $i; sleep 0.2; done",
                              on_stdout=lambda t: chunks.append(
                                  (time.monotonic(), t)))
        done = time.monotonic()
        self.assertEqual(res.exit_code, 0)
        self.assertEqual("".join(t for _, t in chunks), "1\n2\n3\n")
        self.assertEqual(res.stdout, "1\n2\n3\n")
        # The first line came while the command still slept: output is
        # streamed, not handed over at the end.
        self.assertGreater(done - chunks[0][0], 0.2, chunks)

    def test_files_round_trip(self):
        sb = self.box()
        data = b"\x00\xff" + bytes(range(256)) + b"\xff\x00end"
        sb.files.write("/tmp/sdk-bytes.bin", data, mode=0o600)
        self.assertEqual(sb.files.read("/tmp/sdk-bytes.bin"), data)
        entries = {e.name: e for e in sb.files.list("/tmp")}
        self.assertIn("sdk-bytes.bin", entries)
        entry = entries["sdk-bytes.bin"]
        self.assertEqual(entry.type, "file")
        self.assertEqual(entry.size, len(data))
        self.assertEqual(entry.mode & 0o777, 0o600)
        res = sb.commands.run("wc -c < /tmp/sdk-bytes.bin")
        self.assertEqual(res.stdout.strip(), str(len(data)))
        with self.assertRaises(NotFound):
            sb.files.read("/tmp/no-such-file")

    def test_fork(self):
        parent = self.box()
        kids = parent.fork(2)
        for kid in kids:
            self.addCleanup(kid.kill)
        self.assertEqual(len(kids), 2)
        self.assertEqual(len({parent.id, kids[0].id, kids[1].id}), 3)
        uuids = [k.commands.run("cat /proc/sys/kernel/random/uuid").stdout
                 for k in kids]
        self.assertNotEqual(uuids[0], uuids[1])
        w = kids[0].commands.run("echo mine > /tmp/only-in-kid0")
        self.assertEqual(w.exit_code, 0)
        self.assertEqual(kids[0].commands.run(
            "test -e /tmp/only-in-kid0").exit_code, 0)
        self.assertNotEqual(kids[1].commands.run(
            "test -e /tmp/only-in-kid0").exit_code, 0)
        self.assertNotEqual(parent.commands.run(
            "test -e /tmp/only-in-kid0").exit_code, 0)

    def test_snapshot(self):
        sb = self.box()
        snap = sb.snapshot()
        path = snap["path"]
        self.assertTrue(path)
        if not URL:
            # Only a daemon on this host has its snapshot here to look at.
            self.addCleanup(shutil.rmtree, path, ignore_errors=True)
            self.assertTrue(os.path.exists(path), path)
        # It runs on.
        self.assertEqual(sb.commands.run("echo on").stdout, "on\n")

    def test_pause_resume(self):
        sb = self.box()
        self.assertEqual(sb.pause().state, "paused")
        self.assertEqual(sb.resume().state, "running")
        self.assertEqual(sb.commands.run("echo back").stdout, "back\n")

    def test_kill(self):
        sb = self.box()
        sb.kill()
        with self.assertRaises(NotFound):
            Sandbox.connect(sb.id, client=self.client)
        sb.kill()

    def test_context_manager_kills(self):
        with Sandbox.create(image=IMAGE, client=self.client) as sb:
            self.addCleanup(sb.kill)  # in case the with block fails early
            self.assertEqual(sb.commands.run("echo in").stdout, "in\n")
        with self.assertRaises(NotFound):
            Sandbox.connect(sb.id, client=self.client)

    def test_pool(self):
        name = f"sdk-{uuid.uuid4().hex[:10]}"
        self.client.create_pool(name=name, image=IMAGE, min_idle=1)
        self.addCleanup(self._delete_pool_quietly, name)
        deadline = time.monotonic() + POOL_DEADLINE_S
        while True:
            pool = self.client.get_pool(name)
            if pool.get("idle"):
                break
            if pool.get("state") == "failed":
                self.fail(f"pool {name} failed: {pool.get('error')}")
            if time.monotonic() > deadline:
                self.fail(f"pool {name} had no idle box after "
                          f"{POOL_DEADLINE_S} s: {pool}")
            time.sleep(0.5)
        sb = Sandbox.create(pool=name, client=self.client)
        self.addCleanup(sb.kill)
        self.assertEqual(sb.commands.run("echo ok").stdout, "ok\n")
        self.client.delete_pool(name)
        with self.assertRaises(NotFound):
            self.client.get_pool(name)
        # A box handed out outlives its pool.
        self.assertEqual(sb.commands.run("echo still").stdout, "still\n")

    def _delete_pool_quietly(self, name):
        try:
            self.client.delete_pool(name)
        except NotFound:
            pass
        except ForkboxError as e:
            print(f"cleanup: pool {name}: {e}", file=sys.stderr)


if __name__ == "__main__":
    unittest.main()
