#!/usr/bin/env node
// A Node.js client of an amqprpc server (Go net/rpc over RabbitMQ), on
// amqplib, receiving its replies through RabbitMQ's direct reply-to: it
// consumes amq.rabbitmq.reply-to with noAck on the channel that then
// publishes the requests, and names it as every request's reply_to.
//
// It runs four checks against the Arith service (net/rpc's example):
//   typed        Arith.Multiply {"A":6,"B":7} with type and content_type -> 42
//   default      no type, no content_type {"A":3,"B":5} -> the server's
//                default method (Arith.Multiply: 15), or with
//                --expect-default=none the "no default method" error reply
//   error-reply  Arith.Divide {"A":1,"B":0} -> x-rpc-error "divide by zero"
//   concurrent   50 Arith.Multiply calls published at once, then collected,
//                each reply matched to its request by correlation id
//
// With --conformance it runs the client flow of docs/PROTOCOL.md §9
// instead, against `amqprpc conform client`, which sends a stray reply (an
// unknown correlation id) before each reply and the reply again after it,
// and answers requests that arrive together last first. It calls
// Conformance.Echo with each step's name, for a reply of the shape the
// step names (no content_type, an empty one, extra properties and headers,
// an error reply, one with a body, an empty x-rpc-error, a delayed reply),
// then 20 calls at once; after each it sends back what it got with
// Conformance.Record ("<step> ok <result>" or "<step> error <text>"), and
// at the end records "done". It prints one JSON line per step,
// {"step", "got"}; `amqprpc conform client` gives the verdict.
//
// Each check prints one JSON line {"check", "ok", "problem", "detail"}; the
// last line is {"result": "ok"|"fail", "passed": N, "failed": N}. Exit
// status: 0 all passed, 1 a check failed, 2 could not run (broker, queue),
// 3 the overall time limit passed.
//
//   npm ci && node client.js --queue arith
//   node client.js --queue conformance --conformance
'use strict';

const crypto = require('node:crypto');
const { parseArgs } = require('node:util');
const amqp = require('amqplib');

const ERROR_HEADER = 'x-rpc-error';
const JSON_TYPE = 'application/json';
const REPLY_TO = 'amq.rabbitmq.reply-to';
const NO_METHOD = 'amqprpc: request has no type and the server has no default method';

const { values: opts } = parseArgs({
  options: {
    url: { type: 'string', default: process.env.AMQP_URL || 'amqp://guest:guest@127.0.0.1:5672/' },
    queue: { type: 'string', default: process.env.AMQP_QUEUE || 'arith' },
    'call-timeout': { type: 'string', default: '10' }, // seconds per reply
    concurrency: { type: 'string', default: '50' },
    'expect-default': { type: 'string', default: 'multiply' }, // or none
    'time-limit': { type: 'string', default: '60' }, // seconds for the run
    conformance: { type: 'boolean', default: false }, // the client flow of amqprpc conform client
  },
});
const callTimeoutMs = Math.round(Number(opts['call-timeout']) * 1000);
const concurrency = Number.parseInt(opts.concurrency, 10);
if (!(callTimeoutMs > 0) || !(concurrency > 0) || !['multiply', 'none'].includes(opts['expect-default'])) {
  console.error('usage: client.js [--url U] [--queue Q] [--call-timeout S] [--concurrency N] [--expect-default multiply|none]');
  process.exit(2);
}

function emit(obj) {
  const sorted = {};
  for (const k of Object.keys(obj).sort()) sorted[k] = obj[k];
  process.stdout.write(`${JSON.stringify(sorted)}\n`);
}

// The whole run is bounded, whatever hangs.
const limit = setTimeout(
  () => {
    emit({ result: 'fail', error: `time limit of ${opts['time-limit']}s passed` });
    process.exit(3);
  },
  Number(opts['time-limit']) * 1000,
);

class Unroutable extends Error {}

class Client {
  async open(url, queue) {
    this.queue = queue;
    this.waiters = new Map(); // correlation id -> {resolve, reject, timer}
    this.foreign = [];
    this.arrivals = []; // correlation ids of our calls' replies, as they came
    this.conn = await amqp.connect(url, { timeout: 5000 });
    this.conn.on('error', () => {}); // reported through the calls that fail
    this.ch = await this.conn.createChannel();
    this.ch.on('error', () => {});
    this.ch.on('close', () => this.failAll(new Error('channel closed')));
    // The broker returns a mandatory request no queue takes.
    this.ch.on('return', (msg) => {
      const w = this.take(msg.properties.correlationId);
      if (w) w.reject(new Unroutable(`no queue named ${JSON.stringify(queue)}: the broker returned the request`));
    });
    // Direct reply-to: consume the pseudo-queue with noAck on this very
    // channel before publishing any request that names it.
    await this.ch.consume(REPLY_TO, (msg) => this.onReply(msg), { noAck: true });
  }

  onReply(msg) {
    if (msg === null) {
      this.failAll(new Error('reply consumer cancelled by the broker'));
      return;
    }
    const w = this.take(msg.properties.correlationId);
    if (w) {
      this.arrivals.push(msg.properties.correlationId);
      w.resolve(msg);
    } else this.foreign.push(msg.properties.correlationId);
  }

  take(cid) {
    const w = this.waiters.get(cid);
    if (!w) return undefined;
    this.waiters.delete(cid);
    clearTimeout(w.timer);
    return w;
  }

  failAll(err) {
    for (const cid of [...this.waiters.keys()]) this.take(cid).reject(err);
  }

  // call publishes one request and resolves to its reply message. A method
  // or contentType of undefined leaves that property out.
  call(method, body, contentType = JSON_TYPE) {
    const cid = crypto.randomUUID();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(cid);
        reject(new Error(`no reply to ${method || '(no type)'} within ${callTimeoutMs}ms`));
      }, callTimeoutMs);
      this.waiters.set(cid, { resolve, reject, timer });
      const props = {
        correlationId: cid,
        replyTo: REPLY_TO,
        messageId: crypto.randomUUID(),
        expiration: String(callTimeoutMs),
        mandatory: true,
      };
      if (method !== undefined) props.type = method;
      if (contentType !== undefined) props.contentType = contentType;
      try {
        this.ch.publish('', this.queue, Buffer.from(body), props);
      } catch (e) {
        this.take(cid);
        reject(e);
      }
    }).then((msg) => ({ cid, msg }));
  }

  async close() {
    try {
      await this.conn.close();
    } catch {
      // already gone
    }
  }
}

function headerText(msg) {
  const v = (msg.properties.headers || {})[ERROR_HEADER];
  if (v === undefined || v === null) return undefined;
  return Buffer.isBuffer(v) ? v.toString('utf8') : String(v);
}

// checkValue returns a problem with a JSON success reply, or null.
function checkValue(msg, want) {
  const err = headerText(msg);
  if (err !== undefined) return `error reply ${JSON.stringify(err)}, want ${JSON.stringify(want)}`;
  if (msg.properties.contentType !== JSON_TYPE) {
    return `reply content_type ${JSON.stringify(msg.properties.contentType)}, want ${JSON_TYPE}`;
  }
  const text = msg.content.toString('utf8');
  if (text.endsWith('\n')) return `reply body ${JSON.stringify(text)} ends with a newline`;
  let got;
  try {
    got = JSON.parse(text);
  } catch (e) {
    return `reply body ${JSON.stringify(text)} is not JSON: ${e.message}`;
  }
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    return `reply ${JSON.stringify(got)}, want ${JSON.stringify(want)}`;
  }
  return null;
}

async function checkTyped(c) {
  const { msg } = await c.call('Arith.Multiply', '{"A":6,"B":7}');
  return [checkValue(msg, 42), { reply: msg.content.toString('utf8') }];
}

async function checkDefault(c) {
  const { msg } = await c.call(undefined, '{"A":3,"B":5}', undefined);
  const err = headerText(msg);
  const detail = { reply: msg.content.toString('utf8'), error: err === undefined ? null : err };
  if (opts['expect-default'] === 'none') {
    if (err !== NO_METHOD) return [`x-rpc-error ${JSON.stringify(err)}, want ${JSON.stringify(NO_METHOD)}`, detail];
    if (msg.content.length > 0) return ['error reply has a body, want none', detail];
    return [null, detail];
  }
  return [checkValue(msg, 15), detail];
}

async function checkError(c) {
  const { msg } = await c.call('Arith.Divide', '{"A":1,"B":0}');
  const err = headerText(msg);
  const detail = { error: err === undefined ? null : err };
  if (err !== 'divide by zero') return [`x-rpc-error ${JSON.stringify(err)}, want "divide by zero"`, detail];
  if (msg.content.length > 0) return [`error reply has body ${JSON.stringify(msg.content.toString())}, want none`, detail];
  return [null, detail];
}

async function checkConcurrent(c) {
  // Publish every request first, then collect the replies.
  const calls = [];
  for (let i = 0; i < concurrency; i++) {
    calls.push(c.call('Arith.Multiply', JSON.stringify({ A: i, B: i + 1 })).then((r) => ({ i, ...r })));
  }
  const results = await Promise.allSettled(calls);
  const failed = results.filter((r) => r.status === 'rejected');
  const detail = { calls: concurrency, answered: concurrency - failed.length, foreign: c.foreign.length };
  const unroutable = failed.find((r) => r.reason instanceof Unroutable);
  if (unroutable) throw unroutable.reason;
  if (failed.length > 0) return [`${failed.length} of ${concurrency} calls failed: ${failed[0].reason.message}`, detail];
  if (c.foreign.length > 0) return [`${c.foreign.length} replies with unknown correlation ids`, detail];
  for (const { value } of results) {
    const { i, cid, msg } = value;
    if (msg.properties.correlationId !== cid) {
      return [`reply correlation id ${msg.properties.correlationId}, want ${cid}`, detail];
    }
    const problem = checkValue(msg, i * (i + 1));
    if (problem) return [`call ${i}: ${problem}`, detail];
  }
  return [null, detail];
}

const FLOW_STEPS = [
  'plain',
  'content-type-absent',
  'content-type-empty',
  'extra-properties',
  'error',
  'error-with-body',
  'error-empty',
  'delayed',
];
const FLOW_CONCURRENT = 20;

// outcome is what a call got, as the client flow records it: "ok <result>"
// or "error <text>". An error reply's body is ignored; a reply whose
// content_type is absent or empty is JSON.
function outcome(msg) {
  const err = headerText(msg);
  if (err !== undefined) return `error ${err}`;
  const type = (msg.properties.contentType || '').split(';')[0].trim().toLowerCase();
  if (type !== '' && type !== JSON_TYPE) return `error unsupported reply content_type ${JSON.stringify(msg.properties.contentType)}`;
  let value;
  try {
    value = JSON.parse(msg.content.toString('utf8'));
  } catch (e) {
    return `error malformed reply: ${e.message}`;
  }
  return `ok ${typeof value === 'string' ? value : JSON.stringify(value)}`;
}

// runFlow runs the client flow of PROTOCOL.md §9; conform client judges
// what it records.
async function runFlow(c) {
  const record = (token) => c.call('Conformance.Record', JSON.stringify(token));
  for (const step of FLOW_STEPS) {
    const { msg } = await c.call('Conformance.Echo', JSON.stringify(step));
    const got = outcome(msg);
    emit({ step, got });
    await record(`${step} ${got}`);
  }
  const calls = [];
  for (let i = 0; i < FLOW_CONCURRENT; i++) calls.push(c.call('Conformance.Echo', JSON.stringify(`concurrent-${i}`)));
  const replies = await Promise.all(calls);
  for (const [i, { msg }] of replies.entries()) {
    const got = outcome(msg);
    emit({ step: `concurrent-${i}`, got });
    await record(`concurrent-${i} ${got}`);
  }
  await record('done');
}

async function main() {
  const c = new Client();
  try {
    await c.open(opts.url, opts.queue);
  } catch (e) {
    emit({ result: 'fail', error: `connect: ${e.message}` });
    await c.close();
    return 2;
  }
  if (opts.conformance) {
    try {
      await runFlow(c);
    } catch (e) {
      emit({ result: 'fail', error: e.message });
      return e instanceof Unroutable ? 2 : 1;
    } finally {
      await c.close();
    }
    emit({ result: 'ok' });
    return 0;
  }
  const checks = [
    ['typed', checkTyped],
    ['default', checkDefault],
    ['error-reply', checkError],
    ['concurrent', checkConcurrent],
  ];
  let passed = 0;
  let failed = 0;
  try {
    for (const [name, run] of checks) {
      let problem;
      let detail = {};
      try {
        [problem, detail] = await run(c);
      } catch (e) {
        if (e instanceof Unroutable) {
          emit({ result: 'fail', error: e.message });
          return 2;
        }
        problem = e.message;
      }
      emit({ check: name, ok: problem === null, problem, detail });
      if (problem === null) passed++;
      else failed++;
    }
  } finally {
    await c.close();
  }
  emit({ result: failed === 0 ? 'ok' : 'fail', passed, failed });
  return failed === 0 ? 0 : 1;
}

main().then(
  (code) => {
    clearTimeout(limit);
    process.exitCode = code;
  },
  (e) => {
    clearTimeout(limit);
    emit({ result: 'fail', error: String((e && e.stack) || e) });
    process.exitCode = 2;
  },
);
