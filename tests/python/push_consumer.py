#!/usr/bin/env python3
"""Consume with the official RocketMQ 5 Python PushConsumer and check exactly-once.

The listener records every delivered body (thread-safely) and returns
ConsumeResult.SUCCESS, so the client acks it. Runs until every expected body
"{prefix}-{i}" for i in 0..expect-1 has been seen and acked, or --timeout runs
out, then keeps consuming for --tail seconds (default 3) to check that nothing
else arrives. Passes only if every expected body was delivered exactly once, no
other body arrived, every ack succeeded and no message was flagged corrupted
(which the client nacks without calling the listener).

Push consumers use auto-renew: --invisible is accepted for symmetry with
simple_consumer.py but not sent (the client sends no invisible_duration).
Startup waits up to 10 s for the server's Settings reply (client behaviour).

stdout: one JSON line, e.g. {"ok": true, "received": 10, "duplicates": 0,
"missing": 0, "unexpected": 0, ...}. Exit codes: 0 pass, 1 check failed,
2 error (startup failed), 3 hard time limit hit (--timeout + tail + a grace
period, e.g. a hung shutdown).
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

from rocketmq import (ClientConfiguration, ConsumeResult, Credentials,
                      FilterExpression, MessageListener, PushConsumer)

EXIT_OK, EXIT_FAILED, EXIT_ERROR, EXIT_TIMEOUT = 0, 1, 2, 3
NAME = "push_consumer"


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


class RecordingListener(MessageListener):
    """Records each delivery; always succeeds (the client then acks)."""

    def __init__(self, tracker, runner):
        self.tracker = tracker
        self.runner = runner

    def consume(self, message):
        try:
            body = bytes(message.body or b"").decode("utf-8", errors="replace")
            self.tracker.record(body, message.message_id, message.delivery_attempt,
                                message.corrupted, tail=self.runner.phase == "tail")
        except Exception as e:  # noqa: BLE001 - never fail the delivery because of us
            print(f"{NAME}: listener error: {type(e).__name__}: {e}", file=sys.stderr)
        return ConsumeResult.SUCCESS


class CheckedPushConsumer(PushConsumer):
    """PushConsumer that counts the outcome of the acks (and nacks) it sends.

    PushConsumer acks through Consumer._ack(message) after the listener returned
    SUCCESS, and nacks through Consumer._change_invisible_duration(); both raise on
    a failed RPC or a non-OK status. The client retries a failed ack every 1 s.
    """

    tracker = None

    def _ack(self, message):
        try:
            super()._ack(message)
        except Exception as e:
            if self.tracker is not None:
                with self.tracker.lock:
                    self.tracker.ack_errors.append(
                        f"ack {message.message_id}: {type(e).__name__}: {e}")
            raise
        if self.tracker is not None:
            with self.tracker.lock:
                self.tracker.acked += 1

    def _change_invisible_duration(self, message, invisible_duration):
        if self.tracker is not None:
            with self.tracker.lock:
                self.tracker.nacks += 1
        return super()._change_invisible_duration(message, invisible_duration)


class Runner:
    def __init__(self, args):
        self.args = args
        self.tracker = Tracker(args.prefix, args.expect)
        self.tracker.nacks = 0
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
            with self.tracker.lock:
                result["nacks"] = self.tracker.nacks
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
        if r["acked"] < r["received"]:
            p.append(f"only {r['acked']} of {r['received']} deliveries acked")
        if r["nacks"]:
            p.append(f"{r['nacks']} messages nacked by the client")
        return p

    def watchdog(self, hard):
        """Startup must finish within --timeout; everything within `hard` seconds."""
        while True:
            time.sleep(0.2)
            elapsed = time.monotonic() - self.start
            if self.phase == "startup" and elapsed > self.args.timeout + 0.5:
                self.finish(EXIT_TIMEOUT, f"startup did not finish within --timeout {self.args.timeout}s "
                                          f"(the client waits up to 10 s for the server's Settings reply)")
            if elapsed > hard:
                self.finish(EXIT_TIMEOUT, f"hard time limit {hard:.0f}s hit during {self.phase}")

    def settled(self):
        """All expected bodies seen and every delivery's ack attempted."""
        t = self.tracker
        with t.lock:
            seen = sum(1 for b in t.by_body if b in t.expected)
            return seen >= self.args.expect and t.acked + len(t.ack_errors) >= t.deliveries

    def run(self):
        a = self.args
        # Hard limit: main phase + tail + shutdown grace (shutdown notifies each
        # endpoint with the request timeout and waits for running listeners).
        hard = a.timeout + a.tail + 3 * a.request_timeout + 10
        threading.Thread(target=self.watchdog, args=(hard,), daemon=True).start()

        consumer = None
        try:
            config = ClientConfiguration(a.endpoint, Credentials(), request_timeout=a.request_timeout)
            consumer = CheckedPushConsumer(
                config, a.group,
                message_listener=RecordingListener(self.tracker, self),
                subscription={a.topic: FilterExpression(a.tag)},
                consumption_thread_count=a.threads,
            )  # tls_enable defaults to False
            consumer.tracker = self.tracker
            try:
                consumer.startup()
            except AttributeError as e:
                # 5.1.2 masks its IllegalStateException ("failed to receive initial
                # settings from server within 10s") behind this AttributeError.
                raise RuntimeError(
                    f"{e} -- the 5.1.2 client's mask for: no Settings reply with status OK "
                    f"on the Telemetry stream within 10 s (or QueryRoute failed)") from e
            self.phase = "consume"
            deadline = self.start + a.timeout
            while time.monotonic() < deadline and not self.settled():
                time.sleep(0.05)
            if self.settled() and a.tail > 0:
                self.phase = "tail"
                time.sleep(a.tail)
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
                    help="seconds (from start, startup included) to collect all expected bodies")
    ap.add_argument("--prefix", default="msg", help='body prefix: bodies are "{prefix}-{i}" (default: msg)')
    ap.add_argument("--invisible", type=int, default=30,
                    help="accepted for symmetry with simple_consumer.py; push consumers auto-renew and send none")
    ap.add_argument("--tag", default="*", help='TAG filter expression (default: "*")')
    ap.add_argument("--tail", type=float, default=3.0,
                    help="seconds to keep consuming after all bodies arrived (default: 3)")
    ap.add_argument("--threads", type=int, default=4,
                    help="consumption thread count (default: 4)")
    ap.add_argument("--request-timeout", type=int, default=3,
                    help="client RPC timeout in whole seconds (default: 3)")
    args = ap.parse_args()
    if args.expect < 0 or args.timeout <= 0 or args.threads <= 0:
        ap.error("--expect must be >= 0; --timeout and --threads must be > 0")
    Runner(args).run()


if __name__ == "__main__":
    main()
