#!/usr/bin/env node
'use strict';
// Produce and consume through a load balancer while proxies come and go,
// with the official Node.js client (rocketmq-client-nodejs 1.0.8). A producer
// sends "{prefix}-{i}" for --seconds, about --rate per second, and remembers
// every send the server acknowledged; a SimpleConsumer receives and acks all
// the while, then until every acknowledged body was received or --drain
// seconds pass. Failed calls are expected (a proxy is killed under the
// clients): counted and retried, never fatal. Duplicates are allowed
// (at-least-once); a lost acknowledged send is not.
//
// stdout: one JSON line {"ok", "sent", "send_errors", "received", "distinct",
// "duplicates", "missing", "missing_sample", ...}. Exit: 0 nothing lost,
// 1 something lost (or nothing sent), 2 error, 3 hard time limit.
// --tls 1 turns the client's TLS on (trust the CA through
// GRPC_DEFAULT_SSL_ROOTS_FILE_PATH: grpc-js 1.14 makes its own TLS context,
// which NODE_EXTRA_CA_CERTS does not reach).
// Needs NODE_PATH=$PIER_TOOLS_DIR/node/node_modules.
const { Producer, SimpleConsumer } = require('rocketmq-client-nodejs');
const { parseArgs, logger, finish, hardLimit, sleep } = require('./common');

const args = parseArgs({
  endpoint: null, topic: null, group: null, seconds: 30, rate: 20, drain: 60,
  prefix: 'node', invisible: 5000, await: 5000, tls: 0,
});

const t0 = Date.now();
const acked = new Set();
const received = new Map();
const s = { send_errors: 0, receive_errors: 0, ack_errors: 0, startup_errors: 0, errors_sample: [] };
let stop = false;

function note(kind, e) {
  s[kind]++;
  if (s.errors_sample.length < 10) s.errors_sample.push(`${kind}: ${String(e && e.message || e).slice(0, 300)}`);
}

function summary() {
  const missing = [ ...acked ].filter((b) => !received.has(b));
  let total = 0;
  for (const n of received.values()) total += n;
  return {
    ok: acked.size > 0 && missing.length === 0,
    sent: acked.size, ...s,
    received: total, distinct: received.size, duplicates: total - received.size,
    missing: missing.length, missing_sample: missing.slice(0, 10),
    secs: (Date.now() - t0) / 1000,
  };
}

hardLimit(args.seconds + args.drain + 60, summary);
process.on('unhandledRejection', (e) => note('send_errors', e));

const common = () => ({ endpoints: args.endpoint, namespace: '', sslEnabled: args.tls === 1 });

// Starts a client, retrying: its start-up calls may meet a dying proxy.
async function started(make) {
  for (let attempt = 0; attempt < 10; attempt++) {
    const c = make();
    try {
      await c.startup();
      return c;
    } catch (e) {
      note('startup_errors', e);
      await c.shutdown().catch(() => {});
      await sleep(1000);
    }
  }
  throw new Error('the client did not start in 10 attempts');
}

async function produce() {
  const producer = await started(() => new Producer({
    ...common(), topics: [ args.topic ], logger: logger('producer'),
  }));
  const end = Date.now() + args.seconds * 1000;
  for (let i = 0; Date.now() < end; i++) {
    const body = `${args.prefix}-${i}`;
    try {
      const r = await producer.send({ topic: args.topic, tag: 'fleet', body: Buffer.from(body) });
      if (!r || !r.messageId) throw new Error('no message id in receipt');
      acked.add(body);
    } catch (e) {
      note('send_errors', e);
      await sleep(200);
    }
    await sleep(1000 / args.rate);
  }
  await producer.shutdown().catch(() => {});
}

async function consume() {
  const consumer = await started(() => new SimpleConsumer({
    ...common(), consumerGroup: args.group, subscriptions: new Map([[ args.topic, '*' ]]),
    awaitDuration: args.await, logger: logger('simple'),
  }));
  while (!stop) {
    let msgs;
    try {
      msgs = await consumer.receive(32, args.invisible);
    } catch (e) {
      note('receive_errors', e);
      await sleep(500);
      continue;
    }
    for (const m of msgs) {
      const body = m.body.toString();
      received.set(body, (received.get(body) || 0) + 1);
      try {
        await consumer.ack(m);
      } catch (e) {
        note('ack_errors', e); // redelivered after its invisible time
      }
    }
  }
  await consumer.shutdown().catch(() => {});
}

(async () => {
  try {
    const consuming = consume();
    await produce();
    const end = Date.now() + args.drain * 1000;
    while (Date.now() < end && [ ...acked ].some((b) => !received.has(b))) await sleep(500);
    stop = true;
    await Promise.race([ consuming, sleep(args.await + 10000) ]);
    finish(summary());
  } catch (e) {
    process.stderr.write(`error: ${e && e.stack || e}\n`);
    finish({ ...summary(), ok: false, error: String(e && e.message || e) }, 2);
  }
})();
