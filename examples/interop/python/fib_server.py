#!/usr/bin/python3
"""A Fibonacci server in the style of RabbitMQ's RPC tutorial, on pika.

It knows nothing of amqprpc: it reads each request body as a decimal number
n and replies str(fib(n)) to reply_to with the request's correlation_id and
no content_type, one request at a time. An amqprpc client calls it with
WithEncoding(codec.JSON) or codec.Text: the type property is ignored.

The queue is declared non-durable and outlives the server. Prints READY once
consuming; SIGTERM or SIGINT stop it, exit status 0.

    /usr/bin/python3 fib_server.py --queue rpc_queue
"""

import argparse
import os
import signal
import sys

import pika


def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    p.add_argument("--queue", default="rpc_queue")
    args = p.parse_args()

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))

    params = pika.URLParameters(args.url)
    params.connection_attempts = 1
    params.socket_timeout = 5
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.queue_declare(queue=args.queue)
    ch.basic_qos(prefetch_count=1)
    served = [0]

    def on_request(ch, method, props, body):
        try:
            reply = str(fib(int(body)))
        except ValueError:
            reply = "not a number: %r" % body[:32]
        ch.basic_publish(
            exchange="",
            routing_key=props.reply_to,
            body=reply,
            properties=pika.BasicProperties(correlation_id=props.correlation_id),
        )
        ch.basic_ack(delivery_tag=method.delivery_tag)
        served[0] += 1

    tag = ch.basic_consume(args.queue, on_request)
    print("READY queue=%s" % args.queue, flush=True)
    while not stopping:
        conn.process_data_events(time_limit=0.2)
    ch.basic_cancel(tag)
    conn.close()
    print("STOPPED served=%d" % served[0], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
