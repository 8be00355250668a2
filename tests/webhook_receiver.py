"""A partner's webhook receiver for tests: a real HTTP server on loopback, in a thread, that can be told to fail.

It keeps every request it got (headers and body, as sent) and answers each with the next of the answers it was
told (`answer_next`): a status code, or `Slow(seconds, status)` to answer only after the sender's timeout. With
none left it answers 200. Like a real receiver, it may get an event twice (a timed-out attempt that did arrive,
then its retry): `events()` is what a receiver that dedupes by Webhook-Id keeps.
"""

import contextlib
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Slow:
    seconds: float
    status: int = 200


@dataclass(frozen=True)
class Received:
    headers: dict
    body: bytes
    path: str

    @property
    def event_id(self):
        return self.headers["Webhook-Id"]


class WebhookReceiver:
    def __init__(self):
        self.received = []
        self._answers = deque()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True  # a slow answer still asleep never holds up the test's end

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def answer_next(self, *answers):
        with self._lock:
            self._answers.extend(answers)

    def events(self):
        """The events a receiver that dedupes by Webhook-Id keeps, in the order they first arrived."""
        with self._lock:
            kept = {}
            for request in self.received:
                kept.setdefault(request.event_id, request)
            return list(kept.values())

    def wait_for(self, count, timeout=30):
        """Wait until `count` requests have arrived (else fail); returns them all."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.received) >= count, timeout=timeout):
                raise AssertionError(f"the receiver got {len(self.received)} requests, not {count}")
            return list(self.received)

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._arrived:
                    receiver.received.append(Received(dict(self.headers.items()), body, self.path))
                    answer = receiver._answers.popleft() if receiver._answers else 200
                    receiver._arrived.notify_all()
                if isinstance(answer, Slow):
                    time.sleep(answer.seconds)
                    answer = answer.status
                try:
                    self.send_response(answer)
                    self.send_header("Content-Type", "text/plain")
                    self.end_headers()
                    self.wfile.write(f"answered {answer}".encode())
                except OSError:  # the sender gave up waiting and closed the connection
                    pass

            def log_message(self, *args):
                pass

        return Handler


@contextlib.contextmanager
def webhook_receiver():
    receiver = WebhookReceiver()
    thread = threading.Thread(target=receiver.server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
