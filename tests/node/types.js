#!/usr/bin/env node
'use strict';
// Message types with the official Node.js client (rocketmq-client-nodejs 1.0.8).
// --case picks one scenario:
//   fifo         --groups G message groups x --count M messages each (messageGroup
//                "{prefix}-g{j}", bodies "{prefix}-g{j}-{k}", each group sent in
//                order), consumed by a PushConsumer; every group must arrive
//                exactly once and in send order, and the listener must never run
//                two messages of one group at once (FIFO consume service).
//                With --produce-only 1 it only sends (bodies "{body-prefix}{prefix}-g{j}-{k}"),
//                starting at --start-at-ms (Unix ms) if given so several producers can
//                start together, and passes if every send succeeded ("waited_ms": how
//                long it waited for that time; negative: it was ready late).
//   delay        --count messages with deliveryTimestamp = now + --delay ms, read
//                by a SimpleConsumer; none may arrive before its timestamp (minus
//                --early-ms), each must arrive exactly once and carry the timestamp.
//   transaction  --count transactions of one message each, half committed (even i)
//                and half rolled back (odd i), plus --orphans transactions left
//                unresolved (bodies "{prefix}-orphan-{j}"): the server's orphan check
//                (RecoverOrphanedTransactionCommand) calls the checker, which
//                commits them. Only committed and orphan bodies may arrive, exactly
//                once, and the checker must have been called for every orphan.
// stdout: one JSON line with "ok". Exit: 0 pass, 1 check failed, 2 error,
// 3 hard time limit (--timeout). Needs NODE_PATH=$PIER_TOOLS_DIR/node/node_modules.
const { Producer, SimpleConsumer, PushConsumer, ConsumeResult } = require('rocketmq-client-nodejs');
const { TransactionResolution } = require('rocketmq-client-nodejs/proto/apache/rocketmq/v2/definition_pb');
const { parseArgs, fail, logger, finish, hardLimit, sleep, receiveAll } = require('./common');

const args = parseArgs({
  case: null, endpoint: null, topic: null, group: null, count: 20, groups: 4,
  prefix: 'node', timeout: 120, tail: 3, await: 2000, delay: 3000, earlyMs: 50, orphans: 0,
  produceOnly: 0, bodyPrefix: '', startAtMs: 0, accessKey: '', secretKey: '', tls: 'false',
});
if (!args.produceOnly && (args.bodyPrefix || args.startAtMs)) fail('--body-prefix and --start-at-ms need --produce-only 1');

// What every client here shares: the access point, the user's keys when
// given (a server with auth on) and TLS with --tls true (the CA comes from
// GRPC_DEFAULT_SSL_ROOTS_FILE_PATH, read by grpc-js).
const connection = {
  endpoints: args.endpoint, namespace: '', sslEnabled: args.tls === 'true',
  sessionCredentials: args.accessKey
    ? { accessKey: args.accessKey, accessSecret: args.secretKey } : undefined,
};

const t0 = Date.now();
const s = { ok: false, case: args.case, sent: 0, received: 0, duplicates: 0, missing: 0, unexpected: 0,
  corrupted: 0, ack_errors: 0, error: null };
const summary = () => ({ ...s, secs: (Date.now() - t0) / 1000 });
hardLimit(args.timeout, summary);
process.on('unhandledRejection', (e) => {
  process.stderr.write(`unhandled rejection: ${e && e.stack || e}\n`);
  s.error = s.error || `unhandled rejection: ${e && e.message || e}`;
});

function newProducer(extra) {
  return new Producer({ ...connection, topics: [ args.topic ],
    logger: logger('producer'), ...extra });
}

// Receives with a SimpleConsumer until `done()` holds, then --tail seconds more;
// calls onMessage(view, receivedAtMs) for each message and acks it.
async function simpleConsume(onMessage, done) {
  const consumer = new SimpleConsumer({
    ...connection, consumerGroup: args.group,
    subscriptions: new Map([[ args.topic, '*' ]]), awaitDuration: args.await,
    logger: logger('simple'),
  });
  await consumer.startup();
  await receiveAll(consumer, s, args.tail, onMessage, done);
}

// Counts a body against the expected set: unexpected / duplicate / first sight.
function tally(seen, expected, body) {
  if (!expected.has(body)) {
    s.unexpected++;
    return false;
  }
  if (seen.has(body)) {
    s.duplicates++;
    return false;
  }
  seen.add(body);
  return true;
}

async function fifo() {
  const producer = newProducer();
  await producer.startup();
  const groups = Array.from({ length: args.groups }, (_, j) => `${args.prefix}-g${j}`);
  const total = args.groups * args.count;
  try {
    if (args.startAtMs) {
      s.waited_ms = args.startAtMs - Date.now();
      if (s.waited_ms > 0) await sleep(s.waited_ms);
    }
    await Promise.all(groups.map(async (g) => {
      for (let k = 0; k < args.count; k++) {
        const body = `${args.bodyPrefix}${g}-${k}`;
        await producer.send({ topic: args.topic, messageGroup: g, body: Buffer.from(body) });
        s.sent++;
      }
    }));
  } finally {
    await producer.shutdown().catch(() => {});
  }
  s.send_secs = (Date.now() - t0) / 1000;
  if (args.produceOnly) {
    s.ok = s.sent === total;
    return;
  }
  const expected = new Set(groups.flatMap((g) => Array.from({ length: args.count }, (_, k) => `${g}-${k}`)));
  const seen = new Set();
  const next = new Map(groups.map((g) => [ g, 0 ]));
  const inflight = new Map();
  s.out_of_order = 0;
  s.wrong_group = 0;
  s.max_inflight_per_group = 0;
  const consumer = new PushConsumer({
    ...connection, consumerGroup: args.group,
    subscriptions: new Map([[ args.topic, '*' ]]), logger: logger('push'),
    messageListener: {
      async consume(m) {
        const body = m.body.toString();
        const g = m.messageGroup;
        s.received++;
        if (m.corrupted) s.corrupted++;
        if (!body.startsWith(`${g}-`)) s.wrong_group++;
        const n = (inflight.get(g) || 0) + 1;
        inflight.set(g, n);
        s.max_inflight_per_group = Math.max(s.max_inflight_per_group, n);
        await sleep(2);
        inflight.set(g, inflight.get(g) - 1);
        if (tally(seen, expected, body)) {
          const k = Number(body.slice(body.lastIndexOf('-') + 1));
          if (k !== next.get(g)) s.out_of_order++;
          next.set(g, k + 1);
        }
        return ConsumeResult.SUCCESS;
      },
    },
  });
  await consumer.startup();
  try {
    while (seen.size < total) await sleep(100);
    await sleep(args.tail * 1000);
  } finally {
    s.missing = total - seen.size;
    // shutdown() waits for the in-flight long polls (the server's long polling
    // timeout, ~20-30 s): give it a few seconds, then exit anyway.
    const t = Date.now();
    await Promise.race([ consumer.shutdown().catch(() => {}), sleep(3000) ]);
    s.shutdown_secs = (Date.now() - t) / 1000;
  }
  s.ok = s.sent === total && s.missing === 0 && s.duplicates === 0 && s.unexpected === 0 &&
    s.out_of_order === 0 && s.wrong_group === 0 && s.max_inflight_per_group === 1 && s.corrupted === 0;
}

async function delay() {
  const producer = newProducer();
  await producer.startup();
  const due = new Map();
  try {
    for (let i = 0; i < args.count; i++) {
      const body = `${args.prefix}-${i}`;
      const at = new Date(Date.now() + args.delay);
      await producer.send({ topic: args.topic, deliveryTimestamp: at, body: Buffer.from(body) });
      due.set(body, at.getTime());
      s.sent++;
    }
  } finally {
    await producer.shutdown().catch(() => {});
  }
  s.send_secs = (Date.now() - t0) / 1000;
  const seen = new Set();
  s.early = 0;
  s.wrong_timestamp = 0;
  s.max_late_ms = 0;
  s.min_late_ms = null;
  await simpleConsume((m, at) => {
    const body = m.body.toString();
    if (!tally(seen, new Set(due.keys()), body)) return;
    const d = due.get(body);
    if (!m.deliveryTimestamp || m.deliveryTimestamp.getTime() !== d) s.wrong_timestamp++;
    const late = at - d;
    if (late < -args.earlyMs) s.early++;
    s.max_late_ms = Math.max(s.max_late_ms, late);
    s.min_late_ms = s.min_late_ms === null ? late : Math.min(s.min_late_ms, late);
  }, () => seen.size >= args.count);
  s.missing = args.count - seen.size;
  s.ok = s.sent === args.count && s.missing === 0 && s.duplicates === 0 && s.unexpected === 0 &&
    s.early === 0 && s.wrong_timestamp === 0 && s.corrupted === 0 && s.ack_errors === 0;
}

async function transaction() {
  s.checks = 0;
  s.orphan_checks = 0;
  s.orphan_check_after_s = null;
  let orphansSentAt = null;
  const producer = newProducer({
    checker: {
      // Orphans are committed; a check of a resolved one: commit even, roll back odd.
      async check(m) {
        s.checks++;
        const body = m.body.toString();
        if (body.startsWith(`${args.prefix}-orphan-`)) {
          s.orphan_checks++;
          if (s.orphan_check_after_s === null && orphansSentAt !== null) {
            s.orphan_check_after_s = (Date.now() - orphansSentAt) / 1000;
          }
          return TransactionResolution.COMMIT;
        }
        const i = Number(body.split('-').pop());
        return i % 2 === 0 ? TransactionResolution.COMMIT : TransactionResolution.ROLLBACK;
      },
    },
  });
  await producer.startup();
  const committed = new Set();
  s.committed = 0;
  s.rolled_back = 0;
  try {
    for (let i = 0; i < args.count; i++) {
      const body = `${args.prefix}-${i}`;
      const tx = producer.beginTransaction();
      await producer.send({ topic: args.topic, keys: [ `k${i}` ], body: Buffer.from(body) }, tx);
      s.sent++;
      if (i % 2 === 0) {
        await tx.commit();
        committed.add(body);
        s.committed++;
      } else {
        await tx.rollback();
        s.rolled_back++;
      }
    }
    orphansSentAt = Date.now();
    for (let j = 0; j < args.orphans; j++) {
      const body = `${args.prefix}-orphan-${j}`;
      await producer.send({ topic: args.topic, body: Buffer.from(body) }, producer.beginTransaction());
      committed.add(body);
    }
  } catch (e) {
    await producer.shutdown().catch(() => {});
    throw e;
  }
  s.send_secs = (Date.now() - t0) / 1000;
  const seen = new Set();
  try {
    await simpleConsume((m) => tally(seen, committed, m.body.toString()), () => seen.size >= committed.size);
  } finally {
    await producer.shutdown().catch(() => {});
  }
  s.missing = committed.size - seen.size;
  s.ok = s.sent === args.count && s.missing === 0 && s.duplicates === 0 && s.unexpected === 0 &&
    s.corrupted === 0 && s.ack_errors === 0 && s.orphan_checks >= args.orphans;
}

const cases = { fifo, delay, transaction };
if (!cases[args.case]) fail(`--case must be one of ${Object.keys(cases).join(', ')}`);
(async () => {
  try {
    await cases[args.case]();
    if (s.error) s.ok = false;
    finish(summary());
  } catch (e) {
    process.stderr.write(`error: ${e && e.stack || e}\n`);
    s.error = String(e && e.message || e);
    finish(summary(), 2);
  }
})();
