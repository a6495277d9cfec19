#!/usr/bin/env node
// A Fibonacci client in the style of RabbitMQ's RPC tutorial, on amqplib.
//
// It knows nothing of amqprpc: each request is the number as text, with no
// content_type and no type, a fresh correlation_id, and reply_to set to
// RabbitMQ's direct reply-to pseudo-queue, which it consumes with noAck on
// the channel it publishes on. An amqprpc server with a default method
// (WithDefaultMethod) answers it.
//
// Prints "fib(N) = V" for each N given, one call at a time; exits 1 on the
// first call that fails.
//
//   node fib_client.js --queue rpc_queue 10 20 30
'use strict';

const crypto = require('node:crypto');
const { parseArgs } = require('node:util');
const amqp = require('amqplib');

const REPLY_TO = 'amq.rabbitmq.reply-to';

const { values: opts, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: 'string', default: process.env.AMQP_URL || 'amqp://guest:guest@127.0.0.1:5672/' },
    queue: { type: 'string', default: 'rpc_queue' },
    timeout: { type: 'string', default: '10' }, // seconds per reply
  },
});
const numbers = positionals.map((s) => Number.parseInt(s, 10));
if (numbers.length === 0 || numbers.some(Number.isNaN)) {
  console.error('usage: fib_client.js [--url U] [--queue Q] [--timeout S] N...');
  process.exit(2);
}

async function main() {
  const conn = await amqp.connect(opts.url, { timeout: 5000 });
  try {
    const ch = await conn.createChannel();
    const waiting = new Map(); // correlation id -> resolve
    await ch.consume(
      REPLY_TO,
      (msg) => {
        const resolve = msg && waiting.get(msg.properties.correlationId);
        if (resolve) resolve(msg);
      },
      { noAck: true },
    );
    for (const n of numbers) {
      const id = crypto.randomBytes(16).toString('hex');
      const reply = new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no reply to fib(${n}) within ${opts.timeout}s`)), Number(opts.timeout) * 1000);
        waiting.set(id, (msg) => {
          clearTimeout(timer);
          resolve(msg);
        });
      });
      ch.sendToQueue(opts.queue, Buffer.from(String(n)), { correlationId: id, replyTo: REPLY_TO });
      const msg = await reply;
      waiting.delete(id);
      const failure = (msg.properties.headers || {})['x-rpc-error'];
      if (failure !== undefined) throw new Error(`fib(${n}) failed: ${failure}`);
      const value = Number.parseInt(msg.content.toString('utf8'), 10);
      if (Number.isNaN(value)) throw new Error(`reply ${JSON.stringify(msg.content.toString('utf8'))} is not a number`);
      console.log(`fib(${n}) = ${value}`);
    }
  } finally {
    await conn.close();
  }
}

main().catch((e) => {
  console.error(`fib_client.js: ${e.message}`);
  process.exit(1);
});
