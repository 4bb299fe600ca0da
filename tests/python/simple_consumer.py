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
from common import (Runner, Tracker, consumer_arg_parser, polling_options, simple_consumer,
                    tracker_problems)

MAX_BATCH = 32
NAME = "simple_consumer"




class Run(Runner):
    name = NAME

    def __init__(self, args):
        super().__init__(args)
        self.tracker = Tracker(args.prefix, args.expect)

    def result(self):
        return self.tracker.summary()

    @staticmethod
    def problems(r):
        p = tracker_problems(r)
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

    def receive_error(self, text):
        with self.tracker.lock:
            self.tracker.receive_errors.append(text)

    def complete(self):
        return self.tracker.distinct_expected() >= self.args.expect

    def hard_limit(self):
        # Main phase + tail + one long poll + shutdown grace.
        a = self.args
        return a.timeout + a.tail + a.await_duration + 2 * a.request_timeout + 10

    def work(self):
        a = self.args
        consumer = self.started(simple_consumer(a, a.tag))
        self.receive_then_tail(consumer)


def main():
    ap = consumer_arg_parser(
        __doc__, timeout_help="seconds (from start) to collect all expected bodies",
        invisible_help="invisible duration in whole seconds for each receive (default: 30)")
    polling_options(ap, tail=3.0, tail_after="all bodies arrived", await_=5)
    ap.add_argument("--max-errors", type=int, default=3,
                    help="give up after this many consecutive receive errors (default: 3)")
    args = ap.parse_args()
    if args.expect < 0 or args.timeout <= 0 or args.invisible <= 0 or args.await_duration <= 0:
        ap.error("--expect must be >= 0; --timeout, --invisible and --await must be > 0")
    Run(args).run()


if __name__ == "__main__":
    main()
