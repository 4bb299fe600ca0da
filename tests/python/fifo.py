#!/usr/bin/env python3
"""FIFO messages with the official RocketMQ 5 Python client: per-group order.

A PushConsumer of a FIFO consumer group starts first (startup waits for the
server's Settings reply; `subscription.fifo = true` in it makes the 5.1.2 client
choose FIFO consumption, reported as "fifo_mode"). Then a Producer sends
--groups message groups x --count messages, interleaved (g0-000, g1-000, ...,
g0-001, ...), each with `message.message_group = group` and the body
"{group}-{i:03}", synchronously. The listener records, per message group, the
order in which bodies arrive and always returns SUCCESS (the client acks).

With --produce-only there is no consumer: the producer sends (bodies
"{body_prefix}{group}-{i:03}"), starting at --start-at-ms if given (so several
producers can start together), and passes if every send succeeded; the
summary adds "waited_ms" (how long it waited for --start-at-ms; negative: it
was ready late).

Otherwise it passes only if the consumer ran in FIFO mode and every group's bodies arrived
exactly in send order: no duplicate, nothing missing, nothing out of order, no
unexpected body, every received message carrying its message_group, every ack
succeeding and nothing nacked or forwarded to the DLQ. After everything arrived
it keeps consuming for --tail seconds to catch late duplicates.

stdout: one JSON line, e.g. {"ok": true, "fifo_mode": true, "sent": 300,
"received": 300, "groups": {"g0": {"received": 100, "in_order": true, ...}}, ...}.
Exit codes: 0 pass, 1 check failed, 2 error (startup or send failed), 3 time
limit hit (--timeout for startup + send + consumption; --timeout + --tail + a
grace period for everything, shutdown included).
The client's own log goes to ~/logs/rocketmq_python/rocketmq_client.log.

Run with the venv made by tests/scripts/setup-tools.sh.
"""
import threading
import time

from rocketmq import FilterExpression, Message, Producer, PushConsumer
from common import (CountingAcks, RecordingListener, Runner, arg_parser, client_config,
                    count_delivery, delivery_problems, polling_options)

NAME = "fifo"




class Tracker:
    """Thread-safe per-message-group record of the arrival order."""

    def __init__(self, groups, count):
        self.groups = list(groups)
        self.count = count
        self.lock = threading.Lock()
        self.order = {g: [] for g in groups}   # group -> indexes in arrival order
        self.deliveries = 0
        self.unexpected = []                   # bodies that are not "{group}-{i:03}"
        self.wrong_group = []                  # message_group property != body's group
        self.redelivered = 0                   # delivery_attempt > 1
        self.corrupted = 0
        self.acked = 0
        self.ack_errors = []
        self.nacks = 0
        self.dlq = 0
        self.late = 0                          # deliveries during the tail phase
        self.sent = 0
        self.send_errors = []

    def record(self, body, message_group, attempt, corrupted, tail):
        with self.lock:
            count_delivery(self, tail, corrupted)
            if attempt is not None and attempt > 1:
                self.redelivered += 1
            group, _, idx = body.rpartition("-")
            if group not in self.order or not idx.isdigit() or int(idx) >= self.count \
                    or body != f"{group}-{int(idx):03}":
                self.unexpected.append(body)
                return
            if message_group != group:
                self.wrong_group.append(f"{body} had message_group={message_group!r}")
            self.order[group].append(int(idx))

    def complete(self):
        with self.lock:
            return all(len(set(v)) >= self.count for v in self.order.values())

    def settled(self):
        with self.lock:
            return all(len(set(v)) >= self.count for v in self.order.values()) \
                and self.acked + len(self.ack_errors) + self.nacks + self.dlq >= self.deliveries

    def summary(self):
        with self.lock:
            groups = {}
            for g, seq in self.order.items():
                seen = set()
                dups = 0
                inversions = 0          # arrivals after a later index of the group
                first_bad = None        # first position where seq differs from 0, 1, 2, ...
                for pos, i in enumerate(seq):
                    if i in seen:
                        dups += 1
                    seen.add(i)
                    if pos > 0 and i < seq[pos - 1]:
                        inversions += 1
                    if first_bad is None and i != pos:
                        first_bad = {"position": pos, "expected": pos, "got": i}
                missing = sorted(set(range(self.count)) - seen)
                groups[g] = {
                    "received": len(seq),
                    "distinct": len(seen),
                    "duplicates": dups,
                    "missing": len(missing),
                    "out_of_order": inversions,
                    "in_order": seq == list(range(self.count)),
                    "first_deviation": first_bad,
                    "missing_sample": missing[:10],
                    "order_sample": seq[:20] if seq != list(range(self.count)) else [],
                }
            return {
                "sent": self.sent,
                "received": self.deliveries,
                "duplicates": sum(v["duplicates"] for v in groups.values()),
                "missing": sum(v["missing"] for v in groups.values()),
                "out_of_order": sum(v["out_of_order"] for v in groups.values()),
                "unexpected": len(self.unexpected),
                "wrong_group": len(self.wrong_group),
                "redelivered": self.redelivered,
                "corrupted": self.corrupted,
                "acked": self.acked,
                "ack_errors": len(self.ack_errors),
                "nacks": self.nacks,
                "dlq": self.dlq,
                "late": self.late,
                "send_errors": len(self.send_errors),
                "groups": groups,
                "unexpected_sample": self.unexpected[:10],
                "wrong_group_sample": self.wrong_group[:5],
                "error_sample": (self.send_errors + self.ack_errors)[:5],
            }


class CheckedPushConsumer(CountingAcks, PushConsumer):
    """PushConsumer that counts its acks, nacks and DLQ forwards.

    FIFO consumption acks through Consumer._ack(message); a failed consumption
    (never here) would retry locally and then call
    ForwardMessageToDeadLetterQueue via the name-mangled private method.
    """

    def _PushConsumer__forward_message_to_dead_letter_queue(self, message):
        if self.tracker is not None:
            with self.tracker.lock:
                self.tracker.dlq += 1
        return PushConsumer._PushConsumer__forward_message_to_dead_letter_queue(self, message)


class Run(Runner):
    name = NAME
    timed_phases = ("startup", "send", "consume")

    def __init__(self, args):
        super().__init__(args)
        self.groups = [f"{args.group_prefix}{n}" for n in range(args.groups)]
        self.tracker = Tracker(self.groups, args.count)
        self.fifo_mode = None
        self.send_s = None
        self.consume_s = None
        self.waited_ms = None

    def result(self):
        result = self.tracker.summary()
        result["fifo_mode"] = self.fifo_mode
        result["send_s"] = self.send_s
        result["consume_s"] = self.consume_s
        if self.args.produce_only:
            # Nothing was consumed: only the producer's side means anything.
            result = {k: result[k] for k in ("sent", "send_errors", "send_s", "error_sample")}
            result["waited_ms"] = self.waited_ms
        return result

    def problems(self, r):
        p = []
        if self.args.produce_only:
            want = len(self.groups) * self.args.count
            if r["sent"] != want or r["send_errors"]:
                p.append(f"sent {r['sent']} of {want}")
            return p
        if r["fifo_mode"] is not True:
            p.append(f"the client did not consume in FIFO mode (fifo_mode={r['fifo_mode']}): "
                     f"the server's Settings reply lacked subscription.fifo = true")
        for g, v in r["groups"].items():
            if not v["in_order"]:
                p.append(f"group {g}: received {v['received']} ({v['distinct']} distinct), "
                         f"{v['duplicates']} duplicates, {v['missing']} missing, "
                         f"{v['out_of_order']} out of order, first deviation {v['first_deviation']}")
        if r["wrong_group"]:
            p.append(f"{r['wrong_group']} messages with a wrong message_group (e.g. {r['wrong_group_sample'][:2]})")
        p += delivery_problems(r)
        if r["acked"] < r["received"]:
            p.append(f"only {r['acked']} of {r['received']} deliveries acked")
        if r["nacks"] or r["dlq"]:
            p.append(f"{r['nacks']} nacks and {r['dlq']} DLQ forwards by the client")
        return p

    def start_producer(self):
        a = self.args
        return self.started(Producer(client_config(a), topics=[a.topic], tls_enable=a.tls))

    def send(self, producer):
        """Sends every group's messages, interleaved; returns the start time."""
        a = self.args
        self.phase = "send"
        t0 = time.monotonic()
        for i in range(a.count):
            for g in self.groups:
                msg = Message()
                msg.topic = a.topic
                msg.body = f"{a.body_prefix}{g}-{i:03}".encode("utf-8")
                msg.message_group = g
                msg.keys = f"{g}-key-{i:03}"
                receipt = producer.send(msg)
                if not receipt.message_id:
                    raise RuntimeError(f"{g}-{i:03}: send receipt has an empty message_id")
                with self.tracker.lock:
                    self.tracker.sent += 1
        self.send_s = round(time.monotonic() - t0, 2)
        return t0

    def produce(self):
        """--produce-only: start, wait for --start-at-ms, send."""
        producer = self.start_producer()
        if self.args.start_at_ms:
            self.waited_ms = int(self.args.start_at_ms - time.time() * 1000)
            if self.waited_ms > 0:
                time.sleep(self.waited_ms / 1000)
        self.send(producer)

    def hard_limit(self):
        a = self.args
        return a.timeout + a.tail + 3 * a.request_timeout + 10

    def work(self):
        a = self.args
        if a.produce_only:
            self.produce()
            return
        config = client_config(a)
        consumer = CheckedPushConsumer(
            config, a.group,
            message_listener=RecordingListener(self.tracker, self, lambda m: m.message_group),
            subscription={a.topic: FilterExpression("*")},
            consumption_thread_count=a.threads,
            tls_enable=a.tls,
        )
        consumer.tracker = self.tracker
        self.started(consumer)
        # Chosen once, from the server's Settings reply (subscription.fifo).
        self.fifo_mode = bool(consumer.fifo)

        producer = self.start_producer()
        t0 = self.send(producer)

        self.phase = "consume"
        while time.monotonic() - self.start < a.timeout and not self.tracker.settled():
            time.sleep(0.05)
        self.consume_s = round(time.monotonic() - t0, 2)
        if self.tracker.settled() and a.tail > 0:
            self.phase = "tail"
            time.sleep(a.tail)

def main():
    ap = arg_parser(__doc__, "a FIFO topic")
    ap.add_argument("--group", help="a FIFO consumer group (required unless --produce-only)")
    ap.add_argument("--groups", type=int, default=3, help="number of message groups (default: 3)")
    ap.add_argument("--count", type=int, default=100, help="messages per message group (default: 100)")
    ap.add_argument("--group-prefix", default="g",
                    help='message groups are "{prefix}{n}" (default: g)')
    ap.add_argument("--timeout", type=float, default=60.0,
                    help="seconds (from start) for startup, sending and consuming everything (default: 60)")
    polling_options(ap, tail=2.0, tail_after="everything arrived", verb="consuming")
    ap.add_argument("--threads", type=int, default=4, help="consumption thread count (default: 4)")
    ap.add_argument("--produce-only", action="store_true",
                    help="only send (no consumer); see the module doc")
    ap.add_argument("--body-prefix", default="",
                    help="prefix of every body (only with --produce-only)")
    ap.add_argument("--start-at-ms", type=int, default=0,
                    help="with --produce-only: Unix time in ms to start sending at")
    args = ap.parse_args()
    if not args.produce_only and (args.group is None or args.body_prefix or args.start_at_ms):
        ap.error("--group is required, and --body-prefix/--start-at-ms need --produce-only")
    if args.groups <= 0 or args.count <= 0 or args.count > 1000 or args.timeout <= 0 or args.threads <= 0:
        ap.error("--groups, --timeout and --threads must be > 0; --count in 1..1000")
    Run(args).run()


if __name__ == "__main__":
    main()
