#!/usr/bin/env python3
"""Builds the archives test_unpack and test_image_store read: image
archives (docker save, OCI layout) and single layers, some of which try
to escape their root.

    mktar.py OUTDIR OUTSIDE

OUTSIDE is a directory beside the test's root: the hostile layers aim at
absolute paths in it, so the test can check nothing landed there.
Standard library only."""

import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

MTIME = 1000000000
DIR_MTIME = 1234567890


def sha(data):
    return hashlib.sha256(data).hexdigest()


class Layer:
    """A tar built member by member, in exactly the order given."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w",
                                format=tarfile.PAX_FORMAT)

    def _info(self, name, kind, mode, uid=0, gid=0, mtime=MTIME):
        ti = tarfile.TarInfo(name)
        ti.type = kind
        ti.mode = mode
        ti.uid, ti.gid = uid, gid
        ti.uname = ti.gname = ""
        ti.mtime = mtime
        return ti

    def dir(self, name, mode=0o755, **kw):
        self.tar.addfile(self._info(name, tarfile.DIRTYPE, mode, **kw))

    def file(self, name, data, mode=0o644, xattrs=None, **kw):
        ti = self._info(name, tarfile.REGTYPE, mode, **kw)
        ti.size = len(data)
        for key, value in (xattrs or {}).items():
            ti.pax_headers["SCHILY.xattr." + key] = value
        self.tar.addfile(ti, io.BytesIO(data))

    def symlink(self, name, target):
        ti = self._info(name, tarfile.SYMTYPE, 0o777)
        ti.linkname = target
        self.tar.addfile(ti)

    def hardlink(self, name, target):
        ti = self._info(name, tarfile.LNKTYPE, 0o644)
        ti.linkname = target
        self.tar.addfile(ti)

    def node(self, name, kind, major=0, minor=0, mode=0o666):
        ti = self._info(name, kind, mode)
        ti.devmajor, ti.devminor = major, minor
        self.tar.addfile(ti)

    def bytes(self):
        self.tar.close()
        return self.buf.getvalue()


def outer_tar(members):
    """members: list of (name, bytes) files or (name, None, target)
    symlinks, written in order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for m in members:
            ti = tarfile.TarInfo(m[0])
            ti.mtime = MTIME
            if m[1] is None:
                ti.type = tarfile.SYMTYPE
                ti.linkname = m[2]
                t.addfile(ti)
            else:
                ti.size = len(m[1])
                ti.mode = 0o644
                t.addfile(ti, io.BytesIO(m[1]))
    return buf.getvalue()


def docker_layers(outside):
    one = Layer()
    one.dir("etc")
    one.file("etc/hello", b"hello\n")
    one.file("etc/remove-me", b"gone in layer 2\n")
    one.file("etc/self", b"self\n")
    one.file("etc/xattr", b"x\n", xattrs={"user.fb": "yes",
                                          "trusted.overlay.opaque": "y"})
    one.dir("dir-remove")
    one.dir("dir-remove/x")
    one.file("dir-remove/x/y", b"y\n")
    one.dir("opq")
    one.file("opq/old1", b"old\n")
    one.dir("opq/sub")
    one.file("opq/sub/old2", b"old\n")
    for d in ("opq/keep-before", "opq/keep-after"):
        one.dir(d)
        one.file(d + "/gone", b"old\n")
        one.file(d + "/other", b"old\n")
    one.dir("bin")
    one.file("bin/sh", b"#!sh\n", mode=0o755)
    one.file("bin/su", b"su\n", mode=0o4755)
    one.dir("home")
    one.dir("home/user", mode=0o700, uid=1000, gid=1000)
    one.symlink("victim", outside + "/outside-file")
    one.dir("usr")
    one.dir("usr/lib")
    one.symlink("lib", "usr/lib")
    one.symlink("abs-link", "/etc/hello")
    one.dir("dirtime", mtime=DIR_MTIME)
    one.file("dirtime/f", b"f\n")
    one.hardlink("hl", "etc/hello")
    one.dir("run")
    one.node("run/fifo", tarfile.FIFOTYPE, mode=0o600)
    one.dir("dev")
    one.node("dev/null2", tarfile.CHRTYPE, 1, 3)
    one.dir("replace-dir-with-file")
    one.file("replace-dir-with-file/child", b"c\n")
    one.file("replace-file-with-dir", b"f\n")

    two = Layer()
    two.dir("etc")
    two.file("etc/.wh.remove-me", b"")
    two.file(".wh.dir-remove", b"")
    # A rewrite must not write through the hardlink hl made in layer 1.
    two.file("etc/hello", b"new hello\n")
    # A hardlink to itself leaves the file as it was.
    two.hardlink("etc/self", "etc/self")
    two.dir("opq")
    # Before the opaque marker in the archive, yet this layer's own.
    two.file("opq/+new-before", b"new\n")
    # Whiteouts in directories this layer has no entry for, before and
    # after the marker: the directories stay (empty), whatever the order.
    two.file("opq/keep-before/.wh.gone", b"")
    two.file("opq/.wh..wh..opq", b"")
    two.file("opq/keep-after/.wh.gone", b"")
    two.file("opq/new-after", b"new\n")
    # No entry for opq/sub itself: its lower contents go, this stays.
    two.file("opq/sub/new3", b"new\n")
    # A file over a symlink that points outside replaces the symlink.
    two.file("victim", b"replaced\n")
    # Through the relative symlink lib -> usr/lib, beneath the root.
    two.file("lib/added", b"added\n")
    two.file("replace-dir-with-file", b"now a file\n")
    two.dir("replace-file-with-dir", mode=0o750)
    return one.bytes(), two.bytes()


DOCKER_CONFIG = {
    "Env": ["PATH=/usr/bin:/bin", "FOO=bar baz"],
    "WorkingDir": "/srv",
    "Entrypoint": ["/bin/sh", "-c"],
    "Cmd": ["echo hi"],
    "User": "1000:1000",
}


def image_config(cfg, diff_ids):
    return json.dumps({
        "architecture": "amd64",
        "os": "linux",
        "config": cfg,
        "rootfs": {"type": "layers",
                   "diff_ids": ["sha256:" + d for d in diff_ids]},
    }, sort_keys=True).encode()


def docker_save(outside, corrupt=False, layers=None, cfg=DOCKER_CONFIG):
    l1, l2 = layers or docker_layers(outside)
    config = image_config(cfg, [sha(l1), sha(l2)])
    if corrupt:
        # Layer 1 no longer what the config's diff_ids say.
        l1 = l1.replace(b"hello\n", b"HELLO\n", 1)
    cname = sha(config) + ".json"
    id1, id2 = "1" * 64, "2" * 64
    image = {"Config": cname, "RepoTags": ["forkbox/test:latest"],
             "Layers": [id1 + "/layer.tar", id2 + "/layer.tar"]}
    other = dict(image, RepoTags=["forkbox/other:latest"])
    manifest = json.dumps([image, other]).encode()
    # Layer 2 as docker 25 writes it: a symlink into blobs/sha256/.
    return outer_tar([
        ("blobs/sha256/" + sha(l2), l2),
        (id1 + "/layer.tar", l1),
        (id2 + "/layer.tar", None, "../blobs/sha256/" + sha(l2)),
        (cname, config),
        ("repositories", b"{}"),
        ("manifest.json", manifest),
    ])


def oci_layout(corrupt=False, plains=None, diff_ids=None):
    """plains: the uncompressed layers (default: one small one), stored
    gzipped; diff_ids: what the config claims for them (default: the
    truth)."""
    if plains is None:
        layer = Layer()
        layer.dir("bin")
        layer.file("bin/hello", b"hi\n", mode=0o755)
        layer.symlink("bin/sh", "busybox")
        layer.dir("etc")
        layer.file("etc/os-release", b"ID=forkbox\n")
        plains = [layer.bytes()]
    gzs = [gzip.compress(p, mtime=0) for p in plains]
    gz = gzs[-1]
    config = image_config({"Env": ["PATH=/bin"], "Cmd": ["/bin/hello"]},
                          diff_ids or [sha(p) for p in plains])

    def desc(media, data):
        return {"mediaType": media, "digest": "sha256:" + sha(data),
                "size": len(data)}

    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": desc("application/vnd.oci.image.config.v1+json", config),
        "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", g)
                   for g in gzs],
    }).encode()
    index = json.dumps({
        "schemaVersion": 2,
        "manifests": [desc("application/vnd.oci.image.manifest.v1+json",
                           manifest)],
    }).encode()
    stored = gz
    if corrupt:
        # Same length, one byte off, under the original digest.
        stored = gz[:-9] + bytes([gz[-9] ^ 1]) + gz[-8:]
    return outer_tar([
        ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
        ("blobs/sha256/" + sha(config), config),
    ] + [("blobs/sha256/" + sha(g), g) for g in gzs[:-1]] + [
        ("blobs/sha256/" + sha(gz), stored),
        ("blobs/sha256/" + sha(manifest), manifest),
        ("index.json", index),
    ])


def store_layers():
    """Two layers for test_image_store: the second whites out a file and
    a directory, makes a directory opaque (with a whiteout beneath it,
    which the opaque one makes pointless) and rewrites a hardlinked
    file."""
    one = Layer()
    one.dir("etc")
    one.file("etc/hello", b"hello\n")
    one.hardlink("etc/hello-link", "etc/hello")
    one.file("etc/remove-me", b"bye\n")
    one.file("etc/keep", b"keep\n")
    one.file("etc/xattr", b"x\n", xattrs={"user.fb": "yes"})
    one.dir("opq")
    one.file("opq/old", b"old\n")
    one.dir("opq/sub")
    one.file("opq/sub/old2", b"old\n")
    one.dir("opq/keep")
    one.file("opq/keep/gone", b"old\n")
    one.dir("dir-remove")
    one.dir("dir-remove/x")
    one.file("dir-remove/x/y", b"y\n")
    one.dir("bin")
    one.file("bin/su", b"su\n", mode=0o4755)
    one.dir("home")
    one.dir("home/user", mode=0o700, uid=1000, gid=1000)
    one.symlink("lnk", "etc/hello")
    one.dir("dev")
    one.node("dev/null2", tarfile.CHRTYPE, 1, 3)

    two = Layer()
    two.dir("etc")
    two.file("etc/.wh.remove-me", b"")
    two.file(".wh.dir-remove", b"")
    two.file("etc/hello", b"new hello\n")
    two.dir("opq", mode=0o750)
    two.file("opq/.wh..wh..opq", b"")
    two.file("opq/new", b"new\n")
    two.dir("opq/sub")
    two.file("opq/sub/new3", b"new\n")
    two.dir("opq/keep")
    two.file("opq/keep/.wh.gone", b"")
    two.dir("new-dir")
    two.file("new-dir/f", b"f\n")
    return one.bytes(), two.bytes()


def leak_layers():
    """A whiteout overlayfs lists as an entry: in p/d, where p replaces a
    lower file, so only the upper layer has p and nothing below has
    p/d/x."""
    one = Layer()
    one.file("p", b"file\n")
    one.file("q", b"q\n")
    two = Layer()
    two.dir("p")
    two.dir("p/d")
    two.file("p/d/.wh.x", b"")
    two.file("p/d/y", b"y\n")
    return one.bytes(), two.bytes()


def overlay_mode_layer():
    """Whiteouts against this same layer's entries, for the unpacker's
    overlay mode."""
    t = Layer()
    t.file(".wh.d", b"")          # before its directory: d opaque
    t.dir("d")
    t.file("d/new", b"new\n")
    t.dir("e")                    # after its directory: e opaque
    t.file("e/f", b"f\n")
    t.file(".wh.e", b"")
    t.file(".wh.f", b"")          # a file of this layer: no whiteout
    t.file("f", b"f\n")
    t.file("g", b"g\n")           # a file: nothing below it to hide
    t.file("g/.wh.x", b"")
    t.dir("h")
    t.file("h/.wh.x", b"")        # a plain whiteout
    t.node("zero", tarfile.CHRTYPE, 0, 0)
    return t.bytes()


def docker_plain(layers, cfg=DOCKER_CONFIG):
    """A docker save archive of any number of layers, each under a name
    of its own even when two are the same."""
    config = image_config(cfg, [sha(l) for l in layers])
    cname = sha(config) + ".json"
    names = ["%064x/layer.tar" % (i + 1) for i in range(len(layers))]
    manifest = json.dumps([{"Config": cname, "Layers": names}]).encode()
    return outer_tar(list(zip(names, layers)) + [
        (cname, config), ("manifest.json", manifest)])


def root_opaque_layer():
    t = Layer()
    t.file(".wh..wh..opq", b"")
    t.dir("only")
    t.file("only/file", b"only\n")
    return t.bytes()


def store_archives(outside):
    l1, l2 = store_layers()
    other = dict(DOCKER_CONFIG, Cmd=["echo other"])
    k1, k2 = leak_layers()
    forged = Layer()
    forged.file("etc/hello", b"forged\n")
    return {
        "store.tar": docker_save(outside, layers=(l1, l2)),
        # Same layers, another config: another image.
        "store2.tar": docker_save(outside, layers=(l1, l2), cfg=other),
        # The same layers gzipped in an OCI layout: one cache entry each,
        # by diff_id.
        "store-oci.tar": oci_layout(plains=[l1, l2]),
        # Layer 2 claims store.tar's diff_id with other content: its blob
        # digest is right, its diff_id a lie.
        "store-oci-forged.tar": oci_layout(plains=[l1, forged.bytes()],
                                           diff_ids=[sha(l1), sha(l2)]),
        "store-leak.tar": docker_save(outside, layers=(k1, k2)),
        # A layer whose root is opaque: nothing of layer 1 is left.
        "store-rootopq.tar": docker_plain([l1, root_opaque_layer()]),
        # Layer 1 again on top (an empty layer twice is common).
        "store-dup.tar": docker_plain([l1, l2, l1]),
        "store-layers.txt": (sha(l1) + "\n" + sha(l2) + "\n").encode(),
        "docker-layer2.tar": docker_layers(outside)[1],
        "ovl-mixed.tar": overlay_mode_layer(),
    }


def cut_after_last(tar):
    """The tar cut right after its last member: every header and all the
    data, none of the zero blocks that end an archive. The last member's
    data must end in a byte other than NUL."""
    cut = tar.rstrip(b"\0")
    return cut + b"\0" * (-len(cut) % 512)


def hostile(outside):
    out = {}
    t = Layer()
    t.file("ok-before", b"fine\n")
    t.file("../escape", b"escaped\n")
    out["escape.tar"] = t.bytes()

    t = Layer()
    t.file(outside + "/abs-target", b"escaped\n")
    out["abs.tar"] = t.bytes()

    t = Layer()
    t.symlink("link", outside + "/outside-dir")
    t.file("link/file", b"escaped\n")
    out["symlink.tar"] = t.bytes()

    t = Layer()
    t.symlink("up", "..")
    t.file("up/escape-rel", b"escaped\n")
    out["symlink-rel.tar"] = t.bytes()

    t = Layer()
    t.hardlink("hl", "../../etc/passwd")
    out["hardlink.tar"] = t.bytes()

    t = Layer()
    t.symlink("etcl", "/etc")
    t.hardlink("hl2", "etcl/passwd")
    out["hardlink-sym.tar"] = t.bytes()

    t = Layer()
    t.file("big", os.urandom(100000))
    whole = t.bytes()
    out["truncated.tar"] = whole[:50000]
    out["truncated.tar.gz"] = gzip.compress(whole, mtime=0)[:60000]

    t = Layer()
    t.file("a", b"a" * 512)
    t.file("b", b"b" * 512)
    out["truncated-boundary.tar"] = cut_after_last(t.bytes())
    return out


def main():
    outdir, outside = sys.argv[1], sys.argv[2]
    files = {
        "docker.tar": docker_save(outside),
        "oci.tar": oci_layout(),
        "oci-bad-digest.tar": oci_layout(corrupt=True),
    }
    files["docker-bad-diffid.tar"] = docker_save(outside, corrupt=True)
    files["docker-truncated.tar"] = files["docker.tar"][:6000]
    files["docker-truncated-boundary.tar"] = cut_after_last(files["docker.tar"])
    files.update(hostile(outside))
    files.update(store_archives(outside))
    os.makedirs(outdir, exist_ok=True)
    for name, data in files.items():
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
