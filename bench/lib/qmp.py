"""A small QMP client (QEMU's JSON machine protocol over a unix socket): commands with
replies, and the asynchronous events (with their timestamps) kept for the caller.

stdlib only.
"""
import json
import socket
import threading
import time


# -- QMP --------------------------------------------------------------------------------
class QmpError(RuntimeError):
    pass


class Qmp:
    """Minimal QMP client: greeting, qmp_capabilities, execute(); events are kept in
    self.events (dicts with 'event', 'data', 'ts' = host wall-clock seconds)."""

    def __init__(self, path, timeout=30, proc=None):
        deadline = time.time() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                self.sock.close()
                if proc is not None and proc.poll() is not None:
                    raise QmpError("QEMU exited (%s) before its QMP socket %s was up"
                                   % (proc.returncode, path))
                if time.time() > deadline:
                    raise QmpError("no QMP socket at %s" % path)
                time.sleep(0.05)
        self.path = path
        self.events = []
        self._replies = {}
        self._cv = threading.Condition()
        self._closed = False
        self._next_id = 0
        self._greeting = None
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()
        with self._cv:
            if not self._cv.wait_for(lambda: self._greeting is not None or self._closed,
                                     timeout):
                raise QmpError("no QMP greeting")
        if self._greeting is None:
            raise QmpError("QMP closed before the greeting")
        self.version = self._greeting.get("QMP", {}).get("version", {})
        self.execute("qmp_capabilities")

    def _read_loop(self):
        f = self.sock.makefile("rb")
        try:
            for line in f:
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                with self._cv:
                    if "QMP" in msg:
                        self._greeting = msg
                    elif "event" in msg:
                        ts = msg.get("timestamp", {})
                        msg["ts"] = ts.get("seconds", 0) + ts.get("microseconds", 0) / 1e6
                        self.events.append(msg)
                    elif "id" in msg:
                        self._replies[msg["id"]] = msg
                    self._cv.notify_all()
        except (OSError, ValueError):
            pass
        finally:
            with self._cv:
                self._closed = True
                self._cv.notify_all()

    def execute(self, cmd, args=None, timeout=60):
        with self._cv:
            self._next_id += 1
            cid = "c%d" % self._next_id
        msg = {"execute": cmd, "id": cid}
        if args:
            msg["arguments"] = args
        try:
            self.sock.sendall(json.dumps(msg).encode() + b"\n")
        except OSError as e:
            raise QmpError("%s: %s" % (cmd, e))
        with self._cv:
            if not self._cv.wait_for(lambda: cid in self._replies or self._closed, timeout):
                raise QmpError("%s: no reply in %ss" % (cmd, timeout))
            if cid not in self._replies:
                raise QmpError("%s: QMP connection closed" % cmd)
            r = self._replies.pop(cid)
        if "error" in r:
            raise QmpError("%s: %s: %s" % (cmd, r["error"].get("class"), r["error"].get("desc")))
        return r.get("return")

    def event(self, name):
        """The first event called name, or None."""
        with self._cv:
            for e in self.events:
                if e["event"] == name:
                    return e
        return None

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


# -- /proc ------------------------------------------------------------------------------
