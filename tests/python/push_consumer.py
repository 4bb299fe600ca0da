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
import time

from rocketmq import FilterExpression, PushConsumer
from common import (CountingAcks, RecordingListener, Runner, Tracker, client_config,
                    consumer_arg_parser, polling_options, tracker_problems)

NAME = "push_consumer"




class CheckedPushConsumer(CountingAcks, PushConsumer):
    """PushConsumer counting the acks and nacks it sends (see common.CountingAcks)."""


class Run(Runner):
    name = NAME
    # Startup must finish within --timeout; everything within the hard limit.
    timed_phases = ("startup",)
    timeout_grace = 0.5

    def __init__(self, args):
        super().__init__(args)
        self.tracker = Tracker(args.prefix, args.expect)
        self.tracker.nacks = 0

    def result(self):
        result = self.tracker.summary()
        with self.tracker.lock:
            result["nacks"] = self.tracker.nacks
        return result

    @staticmethod
    def problems(r):
        p = tracker_problems(r)
        if r["acked"] < r["received"]:
            p.append(f"only {r['acked']} of {r['received']} deliveries acked")
        if r["nacks"]:
            p.append(f"{r['nacks']} messages nacked by the client")
        return p

    def timeout_message(self):
        return (f"startup did not finish within --timeout {self.args.timeout}s "
                f"(the client waits up to 10 s for the server's Settings reply)")

    def settled(self):
        """All expected bodies seen and every delivery's ack attempted."""
        t = self.tracker
        with t.lock:
            seen = sum(1 for b in t.by_body if b in t.expected)
            return seen >= self.args.expect and t.acked + len(t.ack_errors) >= t.deliveries

    def hard_limit(self):
        # Main phase + tail + shutdown grace (shutdown notifies each endpoint
        # with the request timeout and waits for running listeners).
        a = self.args
        return a.timeout + a.tail + 3 * a.request_timeout + 10

    def work(self):
        a = self.args
        config = client_config(a)
        consumer = CheckedPushConsumer(
            config, a.group,
            message_listener=RecordingListener(self.tracker, self, lambda m: m.message_id),
            subscription={a.topic: FilterExpression(a.tag)},
            consumption_thread_count=a.threads,
            tls_enable=a.tls,
        )
        consumer.tracker = self.tracker
        self.started(consumer)
        self.phase = "consume"
        deadline = self.start + a.timeout
        while time.monotonic() < deadline and not self.settled():
            time.sleep(0.05)
        if self.settled() and a.tail > 0:
            self.phase = "tail"
            time.sleep(a.tail)


def main():
    ap = consumer_arg_parser(
        __doc__, timeout_help="seconds (from start, startup included) to collect all expected bodies",
        invisible_help="accepted for symmetry with simple_consumer.py; push consumers auto-renew and send none")
    polling_options(ap, tail=3.0, tail_after="all bodies arrived", verb="consuming")
    ap.add_argument("--threads", type=int, default=4,
                    help="consumption thread count (default: 4)")
    args = ap.parse_args()
    if args.expect < 0 or args.timeout <= 0 or args.threads <= 0:
        ap.error("--expect must be >= 0; --timeout and --threads must be > 0")
    Run(args).run()


if __name__ == "__main__":
    main()
