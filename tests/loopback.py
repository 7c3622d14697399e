"""Raw loopback HTTP servers built for one case: redirects, cookies, huge or
gzip-bomb bodies, trickling answers, malformed headers, deep JSON.

`Scripted(answer)` serves every request on 127.0.0.1 with `answer(request)`:
the bytes of a whole response, or an iterable of byte strings written one by
one (with `pause` seconds between them), so a test can trickle. Requests are
recorded (method, target, lower-cased headers, body).
"""
import socketserver
import threading
import time


def response(status=200, body=b"", headers=None, reason="X"):
    """A complete HTTP/1.1 response; Content-Length added unless given."""
    if isinstance(body, str):
        body = body.encode()
    fields = {"Content-Type": "application/json", **(headers or {})}
    if "Content-Length" not in fields and "Transfer-Encoding" not in fields:
        fields["Content-Length"] = str(len(body))
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in fields.items()) + "\r\n"
    return head.encode("latin-1") + body


class Scripted:
    def __init__(self, answer, pause=0.0):
        self.answer = answer
        self.pause = pause
        self.requests = []
        self._lock = threading.Lock()
        owner = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                while owner._serve_one(self):
                    pass

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def _serve_one(self, handler):
        line = handler.rfile.readline()
        if not line.strip():
            return False
        method, target, _ = line.decode("latin-1").split(" ", 2)
        headers = {}
        while True:
            field = handler.rfile.readline().decode("latin-1")
            if field in ("\r\n", "\n", ""):
                break
            name, _, value = field.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = handler.rfile.read(int(headers.get("content-length") or 0))
        request = {"method": method, "target": target, "headers": headers, "body": body}
        with self._lock:
            self.requests.append(request)
        answer = self.answer(request)
        try:
            if isinstance(answer, (bytes, bytearray)):
                handler.wfile.write(answer)
                handler.wfile.flush()
                return True     # keep-alive: the relay may reuse the connection
            for part in answer:
                handler.wfile.write(part)
                handler.wfile.flush()
                time.sleep(self.pause)
        except OSError:
            pass
        return False

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
