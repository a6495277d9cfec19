#!/usr/bin/python3
"""A Python server that a Go amqprpc client can call, on pika.

It serves net/rpc's Arith example on a service queue, following amqprpc's
wire contract with JSON bodies:

  Arith.Multiply  {"A": a, "B": b} -> a*b
  Arith.Divide    {"A": a, "B": b} -> {"Quo": a/b, "Rem": a%b} (Go's
                  truncated division), or the error "divide by zero"

A request names its method in the `type` property (an empty one means
--default-method, if given) and its encoding in `content_type` (empty means
JSON; gob is refused with an error reply). The reply goes to the default
exchange with the request's `reply_to` as routing key, its `correlation_id`
copied, content_type application/json, and a failure as the `x-rpc-error`
header with no body. Each request is acknowledged after its reply is
published.

The queue is declared non-durable (--durable to match a Go server's default
declaration, so both can share the queue) and not auto-delete, so it
outlives this server: a Go client calling after the server stopped times out
instead of getting "no such queue". Prints READY once consuming; SIGTERM or SIGINT
stop it after the request in hand, exit status 0.

    /usr/bin/python3 server.py --queue arith
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


METHODS = {"Arith.Multiply": multiply, "Arith.Divide": divide}


def media_type(content_type):
    return (content_type or "").split(";", 1)[0].strip().lower()


def serve_one(props, body, default_method):
    """Returns the reply body, or raises ServiceError."""
    ct = media_type(props.content_type)
    if ct not in ("", JSON_TYPE):
        raise ServiceError(
            'amqprpc: unsupported content type "%s" (want "%s")' % (props.content_type[:64], JSON_TYPE)
        )
    method = props.type or default_method
    if not method:
        raise ServiceError(NO_METHOD)
    fn = METHODS.get(method)
    if fn is None:
        # net/rpc's own texts, so a Go caller sees what a Go server says.
        svc, _, name = method.rpartition(".")
        if svc != "Arith":
            raise ServiceError("rpc: can't find service " + method)
        raise ServiceError("rpc: can't find method " + method)
    try:
        arg = json.loads(body)
    except ValueError as e:
        raise ServiceError("amqprpc: malformed request: %s: %s" % (method, e))
    result = fn(arg)
    return json.dumps(result, separators=(",", ":")).encode()  # no trailing newline


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

    def on_request(ch, method, props, body):
        headers, reply = None, b""
        try:
            reply = serve_one(props, body, args.default_method)
        except ServiceError as e:
            headers = {ERROR_HEADER: str(e)}
        if props.reply_to:
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
