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

module.exports = { parseArgs, fail, logger, finish, hardLimit, sleep };
