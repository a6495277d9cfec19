#!/usr/bin/python3
"""A Fibonacci client in the style of RabbitMQ's RPC tutorial, on pika.

It knows nothing of amqprpc: each request is the number as text with no
content_type and no type, a reply_to naming a private exclusive queue of its
own and a fresh correlation_id; it makes one call at a time and reads the
reply body as a decimal number. An amqprpc server with a default method
(WithDefaultMethod) answers it.

Prints "fib(N) = V" for each N given; exits 1 on the first call that fails.

    /usr/bin/python3 fib_client.py --queue rpc_queue 10 20 30
"""

import argparse
import os
import sys
import time
import uuid

import pika


class FibClient:
    def __init__(self, url, queue, timeout):
        params = pika.URLParameters(url)
        params.connection_attempts = 1
        params.socket_timeout = 5
        self.conn = pika.BlockingConnection(params)
        self.ch = self.conn.channel()
        self.queue = queue
        self.timeout = timeout
        declared = self.ch.queue_declare(queue="", exclusive=True)
        self.reply_queue = declared.method.queue
        self.ch.basic_consume(self.reply_queue, self.on_reply, auto_ack=True)
        self.pending = None
        self.answer = None

    def on_reply(self, _ch, _method, props, body):
        if props.correlation_id == self.pending:
            self.answer = (props.headers or {}), body

    def fib(self, n):
        self.pending, self.answer = uuid.uuid4().hex, None
        self.ch.basic_publish(
            exchange="",
            routing_key=self.queue,
            body=str(n),
            properties=pika.BasicProperties(reply_to=self.reply_queue, correlation_id=self.pending),
        )
        deadline = time.monotonic() + self.timeout
        while self.answer is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply to fib(%d) within %ss" % (n, self.timeout))
            self.conn.process_data_events(time_limit=min(left, 0.5))
        headers, body = self.answer
        if "x-rpc-error" in headers:
            raise RuntimeError("fib(%d) failed: %s" % (n, headers["x-rpc-error"]))
        return int(body)

    def close(self):
        self.conn.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    p.add_argument("--queue", default="rpc_queue")
    p.add_argument("--timeout", type=float, default=10, help="seconds to wait for each reply")
    p.add_argument("n", type=int, nargs="+")
    args = p.parse_args()

    client = FibClient(args.url, args.queue, args.timeout)
    try:
        for n in args.n:
            print("fib(%d) = %d" % (n, client.fib(n)), flush=True)
    except Exception as e:  # one line, for the test log
        print("fib_client.py: %s" % e, file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
