'use strict';
// Shared helpers for the Node.js client scripts (rocketmq-client-nodejs 1.0.8,
// installed by tests/scripts/setup-tools.sh under $PIER_TOOLS_DIR/node).
const util = require('node:util');

// Parses `--name value` pairs into an object, applying `defaults`
// (numbers in defaults make the value parsed as a number).
function parseArgs(defaults) {
  const out = { ...defaults };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) fail(`unexpected argument ${a}`);
    const key = a.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (!(key in out)) fail(`unknown option ${a}`);
    const v = argv[++i];
    if (v === undefined) fail(`option ${a} needs a value`);
    out[key] = typeof defaults[key] === 'number' ? Number(v) : v;
  }
  for (const [ k, v ] of Object.entries(out)) {
    if (v === null) fail(`--${k} is required`);
  }
  out.endpoint = String(out.endpoint).replace(/^https?:\/\//, '');
  return out;
}

function fail(msg) {
  process.stderr.write(`error: ${msg}\n`);
  process.exit(2);
}

// A logger for the client: warnings and errors go to stderr, info only with
// PIER_NODE_VERBOSE=1 (the default logger would write ~/logs/rocketmq/...).
// debug must be a function: Transaction.commit calls it unconditionally.
function logger(name) {
  const verbose = process.env.PIER_NODE_VERBOSE === '1';
  const w = (lvl) => (...args) => process.stderr.write(`${new Date().toISOString()} [${name} ${lvl}] ${util.format(...args)}\n`);
  return {
    info: verbose ? w('INFO') : () => {},
    debug: verbose ? w('DEBUG') : () => {},
    warn: w('WARN'),
    error: w('ERROR'),
  };
}

// Prints the one JSON summary line and exits (0 when summary.ok).
function finish(summary, code) {
  process.stdout.write(JSON.stringify(summary) + '\n', () => {
    process.exit(code ?? (summary.ok ? 0 : 1));
  });
}

// Hard time limit: print a failing summary and exit 3 even if the client hangs.
function hardLimit(seconds, summaryFn) {
  const t = setTimeout(() => {
    const s = { ...summaryFn(), ok: false, error: `hard time limit of ${seconds}s hit` };
    finish(s, 3);
  }, seconds * 1000);
  t.unref();
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Receives with the started SimpleConsumer `consumer` until `done()` holds,
// then `tailSeconds` more; calls onMessage(view, receivedAtMs) for each
// message and acks it. Counts into the summary `s` (received, corrupted,
// receive_errors, ack_errors); five failed receives in a row end it with the
// last error. Shuts the consumer down.
async function receiveAll(consumer, s, tailSeconds, onMessage, done) {
  let tailUntil = null;
  let errors = 0;
  try {
    for (;;) {
      if (tailUntil === null && done()) tailUntil = Date.now() + tailSeconds * 1000;
      if (tailUntil !== null && Date.now() >= tailUntil) break;
      let msgs;
      try {
        msgs = await consumer.receive(32, 20000);
        errors = 0;
      } catch (e) {
        s.receive_errors = (s.receive_errors || 0) + 1;
        process.stderr.write(`receive failed: ${e && e.stack || e}\n`);
        if (++errors >= 5) throw e;
        await sleep(500);
        continue;
      }
      const at = Date.now();
      for (const m of msgs) {
        s.received++;
        if (m.corrupted) s.corrupted++;
        onMessage(m, at);
        try {
          await consumer.ack(m);
        } catch (e) {
          s.ack_errors++;
          process.stderr.write(`ack failed: ${e && e.stack || e}\n`);
        }
      }
    }
  } finally {
    await consumer.shutdown().catch(() => {});
  }
}

module.exports = { parseArgs, fail, logger, finish, hardLimit, sleep, receiveAll };
