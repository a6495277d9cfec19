#!/usr/bin/python3
"""A Python server that a Go amqprpc client can call, on pika.

It serves two services on one service queue, following amqprpc's wire
protocol (docs/PROTOCOL.md) with JSON bodies. net/rpc's Arith example:

  Arith.Multiply  {"A": a, "B": b} -> a*b
  Arith.Divide    {"A": a, "B": b} -> {"Quo": a/b, "Rem": a%b} (Go's
                  truncated division), or the error "divide by zero"

and the conformance service of PROTOCOL.md §9, which `amqprpc conform
server` checks a server with:

  Conformance.Echo    "s" -> "s"
  Conformance.Add     {"A": a, "B": b} -> a+b
  Conformance.Fail    "text" -> the error "text"
  Conformance.Sleep   ms -> ms, after ms milliseconds (0 to 10000); other
                      requests are answered meanwhile
  Conformance.Record  "token" -> how many times Record ran for token
  Conformance.Count   "token" -> how many times Record ran for token

A request names its method in the `type` property (absent or empty means
--default-method, if given; the conformance checks want Conformance.Echo)
and its encoding in `content_type` (absent or empty means JSON; gob and
text are refused with an error reply). A request of type amqprpc.ping is
answered "pong". The reply goes to the default exchange with the request's
`reply_to` as routing key, its `correlation_id` copied, content_type
application/json, and a failure as the `x-rpc-error` header (a string, cut
to 3 KiB on a character boundary) with no body. A request without reply_to
is run and gets no reply. Each request is acknowledged after its reply is
published; a Sleep holds its request, and one of the --prefetch slots,
until then.

The queue is declared non-durable (--durable to match a Go server's default
declaration, so both can share the queue) and not auto-delete, so it
outlives this server: a Go client calling after the server stopped times out
instead of getting "no such queue". Prints READY once consuming; SIGTERM or SIGINT
stop it after the request in hand, exit status 0.

    /usr/bin/python3 server.py --queue arith
    /usr/bin/python3 server.py --queue conformance --default-method Conformance.Echo
"""

import argparse
import json
import os
import signal
import sys

import pika
import pika.exceptions

ERROR_HEADER = "x-rpc-error"
JSON_TYPE = "application/json"
GOB_TYPE = "application/x-gob"
NO_METHOD = "amqprpc: request has no type and the server has no default method"
PING_TYPE = "amqprpc.ping"
MAX_ERROR_TEXT = 3 << 10  # bytes of UTF-8 an error text may take in a reply
MAX_SLEEP_MS = 10000


class ServiceError(Exception):
    """A failed call: its text goes to the caller in x-rpc-error."""


def go_divmod(a, b):
    """Go's integer division, which truncates toward zero (Python floors)."""
    q = abs(a) // abs(b)
    if (a < 0) != (b < 0):
        q = -q
    return q, a - b * q


def operands(arg):
    if not isinstance(arg, dict):
        raise ServiceError("amqprpc: malformed request: want an object {\"A\":..,\"B\":..}")
    a, b = arg.get("A", 0), arg.get("B", 0)  # net/rpc leaves missing fields zero
    if type(a) is not int or type(b) is not int:
        raise ServiceError("amqprpc: malformed request: A and B must be integers")
    return a, b


def multiply(arg):
    a, b = operands(arg)
    return a * b


def divide(arg):
    a, b = operands(arg)
    if b == 0:
        raise ServiceError("divide by zero")
    q, r = go_divmod(a, b)
    return {"Quo": q, "Rem": r}


def string_arg(method, arg):
    if not isinstance(arg, str):
        raise ServiceError("amqprpc: malformed request: %s: want a JSON string" % method)
    return arg


class Conformance:
    """The conformance service of docs/PROTOCOL.md §9. Each method returns
    (result, seconds to wait before replying)."""

    def __init__(self):
        self.runs = {}  # Record's token -> how many times it ran

    def echo(self, arg):
        return string_arg("Conformance.Echo", arg), 0

    def add(self, arg):
        a, b = operands(arg)
        return a + b, 0

    def fail(self, arg):
        text = string_arg("Conformance.Fail", arg)
        raise ServiceError(text or "Conformance.Fail: empty error text")

    def sleep(self, arg):
        if type(arg) is not int:
            raise ServiceError("amqprpc: malformed request: Conformance.Sleep: want an integer")
        if not 0 <= arg <= MAX_SLEEP_MS:
            raise ServiceError("Conformance.Sleep: %d ms: want 0 to %d" % (arg, MAX_SLEEP_MS))
        return arg, arg / 1000.0

    def record(self, arg):
        token = string_arg("Conformance.Record", arg)
        self.runs[token] = self.runs.get(token, 0) + 1
        return self.runs[token], 0

    def count(self, arg):
        return self.runs.get(string_arg("Conformance.Count", arg), 0), 0


def at_once(fn):
    """An Arith method as the table wants it: answered without waiting."""
    return lambda arg: (fn(arg), 0)


def methods():
    conf = Conformance()
    return {
        "Arith.Multiply": at_once(multiply),
        "Arith.Divide": at_once(divide),
        "Conformance.Echo": conf.echo,
        "Conformance.Add": conf.add,
        "Conformance.Fail": conf.fail,
        "Conformance.Sleep": conf.sleep,
        "Conformance.Record": conf.record,
        "Conformance.Count": conf.count,
    }


def cut_error(text):
    """Cuts an error text to MAX_ERROR_TEXT bytes of UTF-8, on a character
    boundary, marked with "...", as a Go server does."""
    b = text.encode("utf-8")
    if len(b) <= MAX_ERROR_TEXT:
        return text
    return b[: MAX_ERROR_TEXT - 3].decode("utf-8", "ignore") + "..."


def media_type(content_type):
    return (content_type or "").split(";", 1)[0].strip().lower()


def serve_one(props, body, default_method, table):
    """Returns (the reply body, seconds to wait before replying), or raises
    ServiceError."""
    ct = media_type(props.content_type)
    if ct not in ("", JSON_TYPE):
        raise ServiceError(
            'amqprpc: unsupported content type "%s" (want "%s")' % (props.content_type[:64], JSON_TYPE)
        )
    if props.type == PING_TYPE:
        return b'"pong"', 0
    method = props.type or default_method  # absent (None) or empty
    if not method:
        raise ServiceError(NO_METHOD)
    fn = table.get(method)
    if fn is None:
        # net/rpc's own texts, so a Go caller sees what a Go server says.
        svc, dot, _ = method.rpartition(".")
        if not dot:
            raise ServiceError("rpc: service/method request ill-formed: " + method)
        if svc not in {m.split(".")[0] for m in table}:
            raise ServiceError("rpc: can't find service " + method)
        raise ServiceError("rpc: can't find method " + method)
    try:
        arg = json.loads(body)
    except ValueError as e:
        raise ServiceError("amqprpc: malformed request: %s: %s" % (method, e))
    result, delay = fn(arg)
    return json.dumps(result, separators=(",", ":")).encode(), delay  # no trailing newline


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    p.add_argument("--queue", default=os.environ.get("AMQP_QUEUE", "arith"))
    p.add_argument("--prefetch", type=int, default=10)
    p.add_argument(
        "--durable",
        action="store_true",
        help="declare the queue durable, as a Go server does unless WithTransientQueue",
    )
    p.add_argument("--default-method", default="", help='method for requests with no type, e.g. "Arith.Multiply"')
    args = p.parse_args()

    stopping = []

    def stop(_sig, _frame):
        stopping.append(True)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    params = pika.URLParameters(args.url)
    params.connection_attempts = 1
    params.socket_timeout = 5
    params.blocked_connection_timeout = 10
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    try:
        ch.queue_declare(queue=args.queue, durable=args.durable, exclusive=False, auto_delete=False)
    except pika.exceptions.ChannelClosedByBroker as e:
        # 406 PRECONDITION_FAILED: the queue exists with other properties.
        print(
            "server.py: cannot declare queue %r (durable=%s): %s %s; a Go server declares "
            "its queue durable unless WithTransientQueue: match it with or without --durable"
            % (args.queue, args.durable, e.reply_code, e.reply_text),
            file=sys.stderr,
        )
        conn.close()
        return 2
    ch.basic_qos(prefetch_count=args.prefetch)

    served = [0]
    table = methods()

    def finish(ch, method, props, reply, headers):
        if props.reply_to:  # absent (None) or empty: no reply wanted
            ch.basic_publish(
                exchange="",
                routing_key=props.reply_to,
                body=reply if headers is None else b"",
                properties=pika.BasicProperties(
                    correlation_id=props.correlation_id,
                    content_type=JSON_TYPE,
                    headers=headers,
                ),
            )
        ch.basic_ack(delivery_tag=method.delivery_tag)
        served[0] += 1

    def on_request(ch, method, props, body):
        headers, reply, delay = None, b"", 0
        try:
            reply, delay = serve_one(props, body, args.default_method, table)
        except ServiceError as e:
            headers = {ERROR_HEADER: cut_error(str(e))}
        if delay > 0:
            # Answer later, from the connection's own loop, taking other
            # requests meanwhile.
            conn.call_later(delay, lambda: finish(ch, method, props, reply, headers))
            return
        finish(ch, method, props, reply, headers)

    tag = ch.basic_consume(args.queue, on_request, auto_ack=False)
    print("READY queue=%s" % args.queue, flush=True)
    while not stopping:
        conn.process_data_events(time_limit=0.2)
    # Stop taking requests; prefetched, unacknowledged ones go back to the
    # queue when the channel closes.
    ch.basic_cancel(tag)
    conn.close()
    print("STOPPED served=%d" % served[0], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
