"""Client: the daemon-wide calls (health, images, pools, metrics)."""

import urllib.parse

from ._http import DEFAULT_TIMEOUT, Transport


def _seg(name):
    """A path segment: a box or pool name may hold anything."""
    return urllib.parse.quote(str(name), safe="")


class Client:
    """A connection to forkboxd.

    By default over the Unix socket ($FORKBOX_SOCKET, else
    $FORKBOX_HOME/forkboxd.sock); with ``url="http://host:port"`` over TCP,
    sending ``token`` as a bearer token. ``timeout`` (seconds) bounds each
    socket operation, not a whole call.
    """

    def __init__(self, socket_path=None, url=None, token=None,
                 timeout=DEFAULT_TIMEOUT):
        self._t = Transport(socket_path=socket_path, url=url, token=token,
                            timeout=timeout)

    def __repr__(self):
        return f"<forkbox.Client {self._t.where}>"

    @property
    def timeout(self):
        return self._t.timeout

    def health(self):
        """{"ok": ..., "version": ..., "boxes": ...}"""
        return self._t.json("GET", "/v1/health")

    def boxes(self):
        """Every box the daemon knows, as Sandbox objects."""
        from .sandbox import Sandbox
        doc = self._t.json("GET", "/v1/boxes") or {}
        return [Sandbox(self, info) for info in doc.get("boxes") or []]

    def images(self):
        """The root disk images, as dicts."""
        doc = self._t.json("GET", "/v1/images") or {}
        return doc.get("images") or []

    def build_image(self, name, builtin=False, from_dir=None):
        """Build the built-in image ``name``, or one from a daemon-host dir."""
        body = {"name": name}
        if builtin:
            body["builtin"] = True
        if from_dir is not None:
            body["from_dir"] = str(from_dir)
        return self._t.json("POST", "/v1/images", json_body=body)

    def import_image(self, name, path):
        """Import a docker-save or OCI tarball lying on the daemon's host."""
        return self._t.json("POST", "/v1/images/import",
                            json_body={"name": name, "path": str(path)})

    def pools(self):
        """The warm pools, as dicts."""
        doc = self._t.json("GET", "/v1/pools") or {}
        return doc.get("pools") or []

    def create_pool(self, name, image="base", min_idle=1, max=16,
                    idle_ttl_s=0, cpus=1, mem_mib=256):
        """Make a pool; its template boots in the background."""
        return self._t.json("POST", "/v1/pools", json_body={
            "name": name, "image": image, "min_idle": min_idle, "max": max,
            "idle_ttl_s": idle_ttl_s, "cpus": cpus, "mem_mib": mem_mib})

    def get_pool(self, name):
        """One pool: its config, state, idle box ids and handed_out count."""
        return self._t.json("GET", f"/v1/pools/{_seg(name)}")

    def delete_pool(self, name):
        """Remove a pool with its template and idle boxes."""
        self._t.request("DELETE", f"/v1/pools/{_seg(name)}")

    def metrics(self):
        """The Prometheus text from /metrics."""
        _, data = self._t.request("GET", "/metrics")
        return data.decode("utf-8", "replace")
