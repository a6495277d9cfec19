#!/usr/bin/python3
"""A Python client of an amqprpc server (Go net/rpc over RabbitMQ), on pika.

It receives replies on a private exclusive queue of its own and runs four
checks against the Arith service (net/rpc's example) on the service queue:

  typed        Arith.Multiply {"A":6,"B":7} with type and content_type -> 42
  default      no type, no content_type {"A":3,"B":5} -> the server's
               default method (Arith.Multiply: 15), or with
               --expect-default=none the "no default method" error reply
  error-reply  Arith.Divide {"A":1,"B":0} -> x-rpc-error "divide by zero"
  concurrent   50 Arith.Multiply calls published at once, then collected,
               each reply matched to its request by correlation id

With --conformance it runs the client flow of docs/PROTOCOL.md §9 instead,
against `amqprpc conform client`, which sends a stray reply (an unknown
correlation id) before each reply and the reply again after it, and
answers requests that arrive together last first. It calls
Conformance.Echo with each step's name, for a reply of the shape the step
names (no content_type, an empty one, extra properties and headers, an
error reply, one with a body, an empty x-rpc-error, a delayed reply), then
20 calls at once; after each it sends back what it got with
Conformance.Record ("<step> ok <result>" or "<step> error <text>"), and
at the end records "done". It prints one JSON line per step,
{"step": ..., "got": ...}; `amqprpc conform client` gives the verdict.

Each check prints one JSON line {"check": ..., "ok": ..., "detail": ...};
the last line is {"result": "ok"|"fail", "passed": N, "failed": N}.
Exit status: 0 all passed (with --conformance: the flow ran to its end), 1
a check failed, 2 could not run (broker, queue), 3 the overall time limit
passed.

Run it with Debian's interpreter, which has python3-pika:
    /usr/bin/python3 client.py --queue arith
    /usr/bin/python3 client.py --queue conformance --conformance
"""

import argparse
import json
import os
import signal
import sys
import time
import uuid

import pika
import pika.exceptions

ERROR_HEADER = "x-rpc-error"
JSON_TYPE = "application/json"
NO_METHOD = "amqprpc: request has no type and the server has no default method"


def emit(obj):
    print(json.dumps(obj, sort_keys=True), flush=True)


class Client:
    """Calls the service queue; replies come to a private exclusive queue."""

    def __init__(self, url, queue, call_timeout):
        params = pika.URLParameters(url)
        params.connection_attempts = 1
        params.socket_timeout = 5
        params.stack_timeout = 10
        params.blocked_connection_timeout = 10
        self.queue = queue
        self.call_timeout = call_timeout
        self.conn = pika.BlockingConnection(params)
        self.ch = self.conn.channel()
        # Publisher confirms make basic_publish raise UnroutableError when
        # the broker returns a mandatory request: no queue has that name.
        self.ch.confirm_delivery()
        ok = self.ch.queue_declare(queue="", exclusive=True, auto_delete=True)
        self.reply_queue = ok.method.queue
        self.replies = {}  # correlation id -> (properties, body)
        self.foreign = []  # replies to no call of ours
        self.pending = set()
        self.arrivals = []  # correlation ids of our calls' replies, as they came
        self.ch.basic_consume(self.reply_queue, self._on_reply, auto_ack=True)

    def _on_reply(self, _ch, _method, props, body):
        cid = props.correlation_id
        if cid in self.pending:
            self.pending.discard(cid)
            self.replies[cid] = (props, body)
            self.arrivals.append(cid)
        else:
            self.foreign.append(cid)

    def publish(self, method, body, content_type=JSON_TYPE):
        """Publishes one request and returns its correlation id. A method or
        content_type of None leaves that property out."""
        cid = uuid.uuid4().hex
        props = pika.BasicProperties(
            correlation_id=cid,
            reply_to=self.reply_queue,
            type=method,
            content_type=content_type,
            message_id=str(uuid.uuid4()),
            expiration=str(int(self.call_timeout * 1000)),
        )
        self.pending.add(cid)
        self.ch.basic_publish(
            exchange="",
            routing_key=self.queue,
            body=body,
            properties=props,
            mandatory=True,
        )
        return cid

    def wait(self, cids, timeout=None):
        """Waits until every id in cids has a reply, or timeout (default the
        call timeout) passes. Returns the ids still unanswered."""
        deadline = time.monotonic() + (timeout or self.call_timeout)
        missing = [c for c in cids if c not in self.replies]
        while missing:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.conn.process_data_events(time_limit=min(left, 0.2))
            missing = [c for c in cids if c not in self.replies]
        return missing

    def call(self, method, body, content_type=JSON_TYPE):
        """One call: returns (properties, body), or raises TimeoutError."""
        cid = self.publish(method, body, content_type)
        if self.wait([cid]):
            raise TimeoutError(
                "no reply to %s within %ss" % (method or "(no type)", self.call_timeout)
            )
        return self.replies.pop(cid)

    def close(self):
        try:
            self.conn.close()
        except Exception:  # already gone; nothing left to release
            pass


def header_text(props):
    v = (props.headers or {}).get(ERROR_HEADER)
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    return v


def check_value(props, body, want):
    """Returns a problem with a JSON success reply, or None."""
    err = header_text(props)
    if err is not None:
        return "error reply %r, want %r" % (err, want)
    if props.content_type != JSON_TYPE:
        return "reply content_type %r, want %r" % (props.content_type, JSON_TYPE)
    if body.endswith(b"\n"):
        return "reply body %r ends with a newline" % body
    try:
        got = json.loads(body)
    except ValueError as e:
        return "reply body %r is not JSON: %s" % (body, e)
    if got != want:
        return "reply %r, want %r" % (got, want)
    return None


def check_typed(c):
    props, body = c.call("Arith.Multiply", b'{"A":6,"B":7}')
    return check_value(props, body, 42), {"reply": body.decode("utf-8", "replace")}


def check_default(c, expect):
    props, body = c.call(None, b'{"A":3,"B":5}', content_type=None)
    detail = {"reply": body.decode("utf-8", "replace"), "error": header_text(props)}
    if expect == "none":
        err = header_text(props)
        if err != NO_METHOD:
            return "x-rpc-error %r, want %r" % (err, NO_METHOD), detail
        if body:
            return "error reply has body %r, want none" % body, detail
        return None, detail
    return check_value(props, body, 15), detail


def check_error(c):
    props, body = c.call("Arith.Divide", b'{"A":1,"B":0}')
    err = header_text(props)
    detail = {"error": err}
    if err != "divide by zero":
        return "x-rpc-error %r, want 'divide by zero' (body %r)" % (err, body), detail
    if body:
        return "error reply has body %r, want none" % body, detail
    if props.content_type not in (None, "", JSON_TYPE):
        return "error reply content_type %r" % props.content_type, detail
    return None, detail


def check_concurrent(c, n):
    want = {}
    for i in range(n):
        cid = c.publish("Arith.Multiply", json.dumps({"A": i, "B": i + 1}).encode())
        want[cid] = i * (i + 1)
    missing = c.wait(list(want))
    detail = {"calls": n, "answered": n - len(missing), "foreign": len(c.foreign)}
    if missing:
        return "%d of %d calls got no reply within %ss" % (len(missing), n, c.call_timeout), detail
    if c.foreign:
        return "%d replies with unknown correlation ids" % len(c.foreign), detail
    for cid, product in want.items():
        props, body = c.replies.pop(cid)
        if props.correlation_id != cid:
            return "reply correlation id %r, want %r" % (props.correlation_id, cid), detail
        problem = check_value(props, body, product)
        if problem:
            return "call %s: %s" % (cid, problem), detail
    return None, detail


FLOW_STEPS = [
    "plain",
    "content-type-absent",
    "content-type-empty",
    "extra-properties",
    "error",
    "error-with-body",
    "error-empty",
    "delayed",
]
FLOW_CONCURRENT = 20


def media_type(content_type):
    return (content_type or "").split(";", 1)[0].strip().lower()


def outcome(props, body):
    """What a call got, as the client flow records it: "ok <result>" or
    "error <text>". An error reply's body is ignored; a reply whose
    content_type is absent or empty is JSON."""
    err = header_text(props)
    if err is not None:
        return "error " + err
    if media_type(props.content_type) not in ("", JSON_TYPE):
        return "error unsupported reply content_type %r" % props.content_type
    try:
        value = json.loads(body)
    except ValueError as e:
        return "error malformed reply: %s" % e
    return "ok " + (value if isinstance(value, str) else json.dumps(value))


def run_flow(c):
    """The client flow of PROTOCOL.md §9: ServeClient judges what it records."""

    def record(token):
        c.call("Conformance.Record", json.dumps(token).encode())

    for step in FLOW_STEPS:
        got = outcome(*c.call("Conformance.Echo", json.dumps(step).encode()))
        emit({"step": step, "got": got})
        record(step + " " + got)
    calls = [(i, c.publish("Conformance.Echo", json.dumps("concurrent-%d" % i).encode())) for i in range(FLOW_CONCURRENT)]
    missing = c.wait([cid for _, cid in calls])
    if missing:
        raise TimeoutError("%d of %d concurrent calls got no reply" % (len(missing), FLOW_CONCURRENT))
    for i, cid in calls:
        got = outcome(*c.replies.pop(cid))
        emit({"step": "concurrent-%d" % i, "got": got})
        record("concurrent-%d %s" % (i, got))
    record("done")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    p.add_argument("--queue", default=os.environ.get("AMQP_QUEUE", "arith"))
    p.add_argument("--call-timeout", type=float, default=10.0, help="seconds to wait for each reply")
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument(
        "--expect-default",
        choices=["multiply", "none"],
        default="multiply",
        help="the server's default method: Arith.Multiply, or none (expect the error reply)",
    )
    p.add_argument("--time-limit", type=int, default=60, help="seconds for the whole run")
    p.add_argument(
        "--conformance",
        action="store_true",
        help="run the client flow of `amqprpc conform client` instead of the Arith checks",
    )
    args = p.parse_args()

    def out_of_time(_sig, _frame):
        emit({"result": "fail", "error": "time limit of %ds passed" % args.time_limit})
        os._exit(3)

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(args.time_limit)

    try:
        c = Client(args.url, args.queue, args.call_timeout)
    except Exception as e:
        emit({"result": "fail", "error": "connect: %s: %s" % (type(e).__name__, e)})
        return 2

    if args.conformance:
        try:
            run_flow(c)
        except pika.exceptions.UnroutableError:
            emit({"result": "fail", "error": "no queue named %r: the broker returned the request" % args.queue})
            return 2
        except (TimeoutError, pika.exceptions.AMQPError) as e:
            emit({"result": "fail", "error": "%s: %s" % (type(e).__name__, e)})
            return 1
        finally:
            c.close()
        emit({"result": "ok"})
        return 0
    checks = [
        ("typed", lambda: check_typed(c)),
        ("default", lambda: check_default(c, args.expect_default)),
        ("error-reply", lambda: check_error(c)),
        ("concurrent", lambda: check_concurrent(c, args.concurrency)),
    ]
    passed = failed = 0
    try:
        for name, run in checks:
            try:
                problem, detail = run()
            except pika.exceptions.UnroutableError:
                emit({"result": "fail", "error": "no queue named %r: the broker returned the request" % args.queue})
                return 2
            except (TimeoutError, pika.exceptions.AMQPError) as e:
                problem, detail = "%s: %s" % (type(e).__name__, e), {}
            emit({"check": name, "ok": problem is None, "problem": problem, "detail": detail})
            if problem is None:
                passed += 1
            else:
                failed += 1
    finally:
        c.close()
    emit({"result": "ok" if failed == 0 else "fail", "passed": passed, "failed": failed})
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
