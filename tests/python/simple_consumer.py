#!/usr/bin/env python3
"""Consume with the official RocketMQ 5 Python SimpleConsumer and check exactly-once.

Receives (max 32 per call, --invisible seconds) and acks each message until every
expected body "{prefix}-{i}" for i in 0..expect-1 has been seen, or --timeout runs
out. Then it keeps receiving for --tail seconds (default 3; the last long poll is
let finish, so up to --await + request timeout longer) to check that nothing else
arrives. Passes only if every expected body was received exactly once, no other
body arrived, every ack succeeded and no message was flagged corrupted (body
digest mismatch).

stdout: one JSON line, e.g. {"ok": true, "received": 10, "duplicates": 0,
"missing": 0, "unexpected": 0, ...}. Exit codes: 0 pass, 1 check failed,
2 error (startup, or too many consecutive receive errors), 3 hard time limit hit
(--timeout + tail + a grace period, e.g. a hung shutdown).
The client's own log goes to ~/logs/rocketmq_python/rocketmq_client.log.

Run with the venv made by tests/scripts/setup-tools.sh.
"""
import argparse
import json
import logging
import os
import sys
import threading
import time

from rocketmq import (ClientConfiguration, Credentials, FilterExpression,
                      SimpleConsumer)

EXIT_OK, EXIT_FAILED, EXIT_ERROR, EXIT_TIMEOUT = 0, 1, 2, 3
MAX_BATCH = 32
NAME = "simple_consumer"


def endpoint_arg(value):
    v = value
    for p in ("http://", "https://"):
        if v.startswith(p):
            v = v[len(p):]
    host, sep, port = v.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return v


class Tracker:
    """Thread-safe record of every delivery, judged against the expected bodies."""

    def __init__(self, prefix, expect):
        self.expected = {f"{prefix}-{i}" for i in range(expect)}
        self.lock = threading.Lock()
        self.deliveries = 0
        self.by_body = {}          # body -> list of (message_id, delivery_attempt)
        self.unexpected = []       # bodies not in expected
        self.corrupted = 0
        self.acked = 0
        self.ack_errors = []
        self.receive_errors = []
        self.late = 0              # deliveries during the tail phase

    def record(self, body, message_id, attempt, corrupted, tail=False):
        with self.lock:
            self.deliveries += 1
            if tail:
                self.late += 1
            if corrupted:
                self.corrupted += 1
            self.by_body.setdefault(body, []).append((message_id, attempt))
            if body not in self.expected:
                self.unexpected.append(body)

    def distinct_expected(self):
        with self.lock:
            return sum(1 for b in self.by_body if b in self.expected)

    def summary(self):
        with self.lock:
            dups = {b: v for b, v in self.by_body.items() if len(v) > 1}
            duplicates = sum(len(v) - 1 for v in dups.values())
            missing = sorted(self.expected.difference(self.by_body), key=_natural)
            return {
                "received": self.deliveries,
                "distinct": len(self.by_body),
                "duplicates": duplicates,
                "missing": len(missing),
                "unexpected": len(self.unexpected),
                "corrupted": self.corrupted,
                "acked": self.acked,
                "ack_errors": len(self.ack_errors),
                "receive_errors": len(self.receive_errors),
                "late": self.late,
                # a few samples for diagnosis
                "missing_sample": missing[:10],
                "unexpected_sample": self.unexpected[:10],
                "duplicate_sample": [
                    {"body": b, "deliveries": [{"message_id": m, "attempt": a} for m, a in v]}
                    for b, v in list(dups.items())[:5]
                ],
                "error_sample": (self.ack_errors + self.receive_errors)[:5],
            }


def _natural(body):
    head, _, tail = body.rpartition("-")
    return (head, int(tail)) if tail.isdigit() else (body, -1)


class Runner:
    def __init__(self, args):
        self.args = args
        self.tracker = Tracker(args.prefix, args.expect)
        self.start = time.monotonic()
        self.phase = "startup"
        self.out_lock = threading.Lock()
        self.done = False

    def finish(self, code, error=None):
        with self.out_lock:
            if self.done:
                return
            self.done = True
            result = self.tracker.summary()
            ok = code == EXIT_OK
            if code == EXIT_OK:
                problems = self.problems(result)
                if problems:
                    ok, code = False, EXIT_FAILED
                    error = "; ".join(problems)
            result = dict({"ok": ok, "phase": self.phase,
                           "elapsed_s": round(time.monotonic() - self.start, 2)}, **result)
            if error:
                result["error"] = error
                print(f"{NAME}: {'FAIL' if code == EXIT_FAILED else 'error'}: {error}", file=sys.stderr)
            print(json.dumps(result), flush=True)
            sys.stderr.flush()
            logging.shutdown()
            os._exit(code)

    @staticmethod
    def problems(r):
        p = []
        if r["missing"]:
            p.append(f"{r['missing']} expected bodies missing (e.g. {r['missing_sample'][:3]})")
        if r["duplicates"]:
            p.append(f"{r['duplicates']} duplicate deliveries (e.g. {r['duplicate_sample'][:1]})")
        if r["unexpected"]:
            p.append(f"{r['unexpected']} unexpected bodies (e.g. {r['unexpected_sample'][:3]})")
        if r["corrupted"]:
            p.append(f"{r['corrupted']} messages flagged corrupted (body digest mismatch)")
        if r["ack_errors"]:
            p.append(f"{r['ack_errors']} acks failed (e.g. {r['error_sample'][:1]})")
        return p

    def receive_once(self, consumer, tail):
        """One receive + ack of everything received. Returns the number of messages."""
        a = self.args
        messages = consumer.receive(MAX_BATCH, a.invisible)
        for m in messages or []:
            body = bytes(m.body or b"").decode("utf-8", errors="replace")
            self.tracker.record(body, m.message_id, m.delivery_attempt, m.corrupted, tail)
            try:
                consumer.ack(m)
                with self.tracker.lock:
                    self.tracker.acked += 1
            except Exception as e:  # noqa: BLE001
                with self.tracker.lock:
                    self.tracker.ack_errors.append(f"ack {m.message_id} ({body}): {type(e).__name__}: {e}")
        return len(messages or [])

    def loop(self, consumer, until, stop_when_complete, tail):
        consecutive = 0
        while time.monotonic() < until:
            if stop_when_complete and self.tracker.distinct_expected() >= self.args.expect:
                return
            try:
                self.receive_once(consumer, tail)
                consecutive = 0
            except Exception as e:  # noqa: BLE001
                consecutive += 1
                with self.tracker.lock:
                    self.tracker.receive_errors.append(f"receive: {type(e).__name__}: {e}")
                if consecutive >= self.args.max_errors:
                    raise RuntimeError(f"{consecutive} consecutive receive errors, last: {type(e).__name__}: {e}")
                time.sleep(min(1.0, max(0.0, until - time.monotonic())))

    def run(self):
        a = self.args
        # Hard limit: main phase + tail + one long poll + shutdown grace.
        hard = a.timeout + a.tail + a.await_duration + 2 * a.request_timeout + 10
        wd = threading.Timer(hard, lambda: self.finish(
            EXIT_TIMEOUT, f"hard time limit {hard:.0f}s hit during {self.phase}"))
        wd.daemon = True
        wd.start()

        consumer = None
        try:
            config = ClientConfiguration(a.endpoint, Credentials(), request_timeout=a.request_timeout)
            consumer = SimpleConsumer(
                config, a.group,
                subscription={a.topic: FilterExpression(a.tag)},
                await_duration=a.await_duration,
            )  # tls_enable defaults to False
            consumer.startup()
            self.phase = "receive"
            self.loop(consumer, self.start + a.timeout, stop_when_complete=True, tail=False)
            if self.tracker.distinct_expected() >= a.expect and a.tail > 0:
                self.phase = "tail"
                self.loop(consumer, time.monotonic() + a.tail, stop_when_complete=False, tail=True)
            self.phase = "shutdown"
            consumer.shutdown()
            consumer = None
        except Exception as e:  # noqa: BLE001
            err = f"{self.phase}: {type(e).__name__}: {e}"
            if consumer is not None and consumer.is_running:
                try:
                    consumer.shutdown()
                except Exception:  # noqa: BLE001
                    pass
            self.finish(EXIT_ERROR, err)
        self.finish(EXIT_OK)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--endpoint", required=True, type=endpoint_arg, help="HOST:PORT of the server")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--group", required=True, help="consumer group")
    ap.add_argument("--expect", required=True, type=int, help="number of bodies expected")
    ap.add_argument("--timeout", required=True, type=float,
                    help="seconds (from start) to collect all expected bodies")
    ap.add_argument("--prefix", default="msg", help='body prefix: bodies are "{prefix}-{i}" (default: msg)')
    ap.add_argument("--invisible", type=int, default=30,
                    help="invisible duration in whole seconds for each receive (default: 30)")
    ap.add_argument("--tag", default="*", help='TAG filter expression (default: "*")')
    ap.add_argument("--await", dest="await_duration", type=int, default=5,
                    help="long-polling await duration in whole seconds (default: 5)")
    ap.add_argument("--tail", type=float, default=3.0,
                    help="seconds to keep receiving after all bodies arrived (default: 3)")
    ap.add_argument("--request-timeout", type=int, default=3,
                    help="client RPC timeout in whole seconds (default: 3)")
    ap.add_argument("--max-errors", type=int, default=3,
                    help="give up after this many consecutive receive errors (default: 3)")
    args = ap.parse_args()
    if args.expect < 0 or args.timeout <= 0 or args.invisible <= 0 or args.await_duration <= 0:
        ap.error("--expect must be >= 0; --timeout, --invisible and --await must be > 0")
    Runner(args).run()


if __name__ == "__main__":
    main()
