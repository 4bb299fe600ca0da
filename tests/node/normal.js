#!/usr/bin/env node
'use strict';
// Normal messages with the official Node.js client (rocketmq-client-nodejs 1.0.8):
// a Producer sends --count messages with bodies "{prefix}-{i}", then a
// SimpleConsumer receives and acks until every body was seen, and keeps
// receiving for --tail seconds to check nothing else arrives. Passes only if
// every body was received exactly once, no unknown body arrived, every ack
// succeeded and no message was flagged corrupted (body digest mismatch).
//
// stdout: one JSON line {"ok", "sent", "received", "duplicates", "missing",
// "unexpected", ...}. Exit: 0 pass, 1 check failed, 2 error, 3 hard time limit
// (--timeout). Needs NODE_PATH=$PIER_TOOLS_DIR/node/node_modules.
const { Producer, SimpleConsumer } = require('rocketmq-client-nodejs');
const { parseArgs, logger, finish, hardLimit, receiveAll } = require('./common');

const args = parseArgs({
  endpoint: null, topic: null, group: null, count: 100, prefix: 'node',
  timeout: 120, tail: 3, await: 2000, concurrency: 16, accessKey: '', secretKey: '',
  // 'true': the client's TLS on (it trusts NODE_EXTRA_CA_CERTS besides the
  // system's roots).
  tls: 'false',
});
// Signs every call when given a user's keys (a server with auth on).
const sessionCredentials = args.accessKey
  ? { accessKey: args.accessKey, accessSecret: args.secretKey } : undefined;
const sslEnabled = args.tls === 'true';

const t0 = Date.now();
const s = {
  ok: false, sent: 0, send_errors: 0, received: 0, duplicates: 0, missing: args.count,
  unexpected: 0, corrupted: 0, ack_errors: 0, receive_errors: 0,
  send_secs: 0, consume_secs: 0, error: null,
};
const summary = () => ({ ...s, secs: (Date.now() - t0) / 1000 });
hardLimit(args.timeout, summary);
process.on('unhandledRejection', (e) => {
  process.stderr.write(`unhandled rejection: ${e && e.stack || e}\n`);
  s.error = s.error || `unhandled rejection: ${e && e.message || e}`;
});

async function produce() {
  const producer = new Producer({
    endpoints: args.endpoint, namespace: '', topics: [ args.topic ], logger: logger('producer'),
    sessionCredentials,
    sslEnabled,
  });
  await producer.startup();
  try {
    let next = 0;
    const worker = async () => {
      while (next < args.count) {
        const i = next++;
        try {
          const r = await producer.send({ topic: args.topic, tag: 'normal', keys: [ `k${i}` ],
            body: Buffer.from(`${args.prefix}-${i}`) });
          if (!r || !r.messageId) throw new Error('no message id in receipt');
          s.sent++;
        } catch (e) {
          s.send_errors++;
          process.stderr.write(`send ${i} failed: ${e && e.stack || e}\n`);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, args.concurrency) }, worker));
  } finally {
    await producer.shutdown().catch(() => {});
  }
}

async function consume() {
  const consumer = new SimpleConsumer({
    endpoints: args.endpoint, namespace: '', consumerGroup: args.group,
    subscriptions: new Map([[ args.topic, '*' ]]), awaitDuration: args.await,
    logger: logger('simple'), sessionCredentials, sslEnabled,
  });
  await consumer.startup();
  const seen = new Map();
  const judge = (m) => {
    const body = m.body.toString();
    const match = body.match(/^(.*)-(\d+)$/);
    if (!match || match[1] !== args.prefix || Number(match[2]) >= args.count) {
      s.unexpected++;
    } else if (seen.has(body)) {
      s.duplicates++;
    } else {
      seen.set(body, true);
    }
    s.missing = args.count - seen.size;
  };
  await receiveAll(consumer, s, args.tail, judge, () => seen.size >= args.count);
}

(async () => {
  try {
    await produce();
    s.send_secs = (Date.now() - t0) / 1000;
    const t1 = Date.now();
    await consume();
    s.consume_secs = (Date.now() - t1) / 1000;
    s.ok = !s.error && s.sent === args.count && s.send_errors === 0 && s.missing === 0 &&
      s.duplicates === 0 && s.unexpected === 0 && s.corrupted === 0 && s.ack_errors === 0;
    finish(summary());
  } catch (e) {
    process.stderr.write(`error: ${e && e.stack || e}\n`);
    s.error = String(e && e.message || e);
    finish(summary(), 2);
  }
})();
