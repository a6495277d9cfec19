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
// With --conformance it runs these checks instead, against the
// conformance service of docs/PROTOCOL.md §9 as `amqprpc conform client`
// serves it, which sends a stray reply (an unknown correlation id) before
// each reply and the reply again after it, and answers requests that
// arrive together last first:
//   echo            Conformance.Echo "hello ✓" -> "hello ✓"
//   default         no type, no content_type "no type" -> the default
//                   method, Conformance.Echo: "no type"
//   add             Conformance.Add {"A":2,"B":3} -> 5
//   error-reply     Conformance.Fail "conformance: failed as asked" ->
//                   x-rpc-error "conformance: failed as asked", no body
//   delayed         Conformance.Sleep 300 -> 300, after at least 300 ms
//   concurrent      20 Conformance.Echo calls published at once, each reply
//                   matched to its request by correlation id
//   strays-dropped  replies with unknown correlation ids came, and none
//                   was taken for a call's reply
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
    conformance: { type: 'boolean', default: false }, // amqprpc conform client's service
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

const CONFORMANCE_ERROR = 'conformance: failed as asked';

async function checkEcho(c) {
  const { msg } = await c.call('Conformance.Echo', JSON.stringify('hello ✓'));
  return [checkValue(msg, 'hello ✓'), { reply: msg.content.toString('utf8') }];
}

async function checkEchoDefault(c) {
  const { msg } = await c.call(undefined, '"no type"', undefined);
  return [checkValue(msg, 'no type'), { reply: msg.content.toString('utf8') }];
}

async function checkAdd(c) {
  const { msg } = await c.call('Conformance.Add', '{"A":2,"B":3}');
  return [checkValue(msg, 5), { reply: msg.content.toString('utf8') }];
}

async function checkFail(c) {
  const { msg } = await c.call('Conformance.Fail', JSON.stringify(CONFORMANCE_ERROR));
  const err = headerText(msg);
  const detail = { error: err === undefined ? null : err };
  if (err !== CONFORMANCE_ERROR) return [`x-rpc-error ${JSON.stringify(err)}, want ${JSON.stringify(CONFORMANCE_ERROR)}`, detail];
  if (msg.content.length > 0) return [`error reply has body ${JSON.stringify(msg.content.toString())}, want none`, detail];
  return [null, detail];
}

async function checkDelayed(c) {
  const start = process.hrtime.bigint();
  const { msg } = await c.call('Conformance.Sleep', '300');
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  const detail = { reply: msg.content.toString('utf8'), ms: Math.round(ms) };
  let problem = checkValue(msg, 300);
  if (problem === null && ms < 300) problem = `the reply came after ${ms} ms, before the 300 ms sleep was over`;
  return [problem, detail];
}

async function checkEchoConcurrent(c) {
  const n = 20;
  const first = c.arrivals.length;
  const calls = [];
  for (let i = 0; i < n; i++) calls.push(c.call('Conformance.Echo', JSON.stringify(`m${i}`)).then((r) => ({ i, ...r })));
  const results = await Promise.allSettled(calls);
  const failed = results.filter((r) => r.status === 'rejected');
  const sent = results.filter((r) => r.status === 'fulfilled').map((r) => r.value.cid);
  const order = c.arrivals.slice(first).filter((cid) => sent.includes(cid));
  const detail = { calls: n, answered: n - failed.length, in_publish_order: JSON.stringify(order) === JSON.stringify(sent) };
  if (failed.length > 0) return [`${failed.length} of ${n} calls failed: ${failed[0].reason.message}`, detail];
  for (const { value } of results) {
    const problem = checkValue(value.msg, `m${value.i}`);
    if (problem) return [`call ${value.i}: ${problem}`, detail];
  }
  return [null, detail];
}

async function checkStrays(c) {
  // The stray and repeated replies of the last calls may still be on their
  // way: let them come.
  await new Promise((resolve) => setTimeout(resolve, 200));
  const detail = { foreign: c.foreign.length };
  if (c.foreign.length === 0) return ['no reply with an unknown correlation id came; conform client sends one with every reply', detail];
  return [null, detail];
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
  const checks = opts.conformance
    ? [
        ['echo', checkEcho],
        ['default', checkEchoDefault],
        ['add', checkAdd],
        ['error-reply', checkFail],
        ['delayed', checkDelayed],
        ['concurrent', checkEchoConcurrent],
        ['strays-dropped', checkStrays],
      ]
    : [
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
