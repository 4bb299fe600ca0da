#!/usr/bin/env python3
"""Delay messages with the official RocketMQ 5 Python client: delivered on time.

A SimpleConsumer (long polling, --await seconds) and a Producer start; the
producer sends one message with `message.delivery_timestamp` = now + --delay
seconds (the intended delivery time). The 5.1.2 client sends the delivery
timestamp in whole seconds (`Timestamp.seconds = int`), so what reaches the
server is int(intended), up to 1 s before the intended time. The consumer
receives continuously from before the send; the receive time of the message
is taken when the receive call returns.

  lateness_ms          = receive time - intended delivery time
  lateness_vs_sent_ms  = receive time - whole-second timestamp actually sent

Passes if the message was received exactly once (a --tail period with short
polls follows), not earlier than intended - 1000 ms (the rounding), and with
lateness_ms < --max-late-ms (default 1500).

stdout: one JSON line, e.g. {"ok": true, "lateness_ms": -412, ...}. Exit codes:
0 pass, 1 check failed, 2 error (startup, send, or too many consecutive receive
errors), 3 time limit hit (--timeout for everything up to the receive; --timeout
+ --tail + a grace period in all).
The client's own log goes to ~/logs/rocketmq_python/rocketmq_client.log.

Run with the venv made by tests/scripts/setup-tools.sh.
"""
import threading
import time

from rocketmq import Message, Producer
from common import (Runner, arg_parser, client_config, polling_options, receive_tail_limit,
                    simple_consumer)

NAME = "delay"




class Run(Runner):
    name = NAME
    timed_phases = ("startup", "send", "receive")

    def __init__(self, args):
        super().__init__(args)
        self.body = f"{args.prefix}-{int(time.time() * 1000)}"
        self.lock = threading.Lock()
        self.r = {
            "body": self.body,
            "delay_s": args.delay,
            "sent": False,
            "message_id": None,
            "intended_ms": None,          # wall clock, ms
            "sent_timestamp_s": None,     # what the client put in delivery_timestamp
            "send_ms": None,              # duration of the send call
            "received": 0,
            "receive_ms": None,           # wall clock when the receive call returned
            "lateness_ms": None,
            "lateness_vs_sent_ms": None,
            "delivery_timestamp_ms": None,  # as delivered by the server
            "message_type": None,
            "delivery_attempt": None,
            "acked": 0,
            "ack_errors": [],
            "receive_errors": [],
            "unexpected": [],
            "receives": 0,                # receive calls made
            "late_deliveries": 0,         # deliveries during the tail phase
        }

    def result(self):
        with self.lock:
            r = dict(self.r)
        warnings = []
        if r["received"] and r["delivery_timestamp_ms"] != (r["sent_timestamp_s"] or 0) * 1000:
            warnings.append(f"delivered delivery_timestamp {r['delivery_timestamp_ms']} ms != "
                            f"sent {r['sent_timestamp_s']} s")
        r["warnings"] = warnings
        return r

    def shown(self, r):
        for k in ("ack_errors", "receive_errors", "unexpected"):
            r[k] = r[k][:5]
        return r

    def problems(self, r):
        p = []
        if r["received"] == 0:
            p.append("the delay message was never received")
            return p
        if r["received"] > 1:
            p.append(f"the delay message was received {r['received']} times")
        if r["lateness_ms"] < -1000:
            p.append(f"delivered too early: {-r['lateness_ms']} ms before the intended time, "
                     f"{-r['lateness_vs_sent_ms']} ms before the whole-second timestamp sent")
        if r["lateness_ms"] >= self.args.max_late_ms:
            p.append(f"delivered {r['lateness_ms']} ms after the intended time "
                     f"(limit {self.args.max_late_ms} ms)")
        if r["unexpected"]:
            p.append(f"{len(r['unexpected'])} unexpected bodies (e.g. {r['unexpected'][:3]})")
        if r["ack_errors"]:
            p.append(f"{len(r['ack_errors'])} acks failed (e.g. {r['ack_errors'][:1]})")
        return p

    def receive_once(self, consumer, tail):
        messages = consumer.receive(32, self.args.invisible)
        now_ms = time.time() * 1000
        with self.lock:
            self.r["receives"] += 1
        for m in messages or []:
            body = bytes(m.body or b"").decode("utf-8", errors="replace")
            with self.lock:
                r = self.r
                if body != self.body:
                    r["unexpected"].append(body)
                else:
                    r["received"] += 1
                    if tail:
                        r["late_deliveries"] += 1
                    if r["received"] == 1:
                        r["receive_ms"] = round(now_ms)
                        r["lateness_ms"] = round(now_ms - r["intended_ms"])
                        r["lateness_vs_sent_ms"] = round(now_ms - r["sent_timestamp_s"] * 1000)
                        r["delivery_timestamp_ms"] = m.delivery_timestamp
                        r["message_type"] = m.message_type
                        r["delivery_attempt"] = m.delivery_attempt
            try:
                consumer.ack(m)
                with self.lock:
                    self.r["acked"] += 1
            except Exception as e:  # noqa: BLE001
                with self.lock:
                    self.r["ack_errors"].append(f"ack {m.message_id} ({body}): {type(e).__name__}: {e}")

    def receive_error(self, text):
        with self.lock:
            self.r["receive_errors"].append(text)

    def complete(self):
        with self.lock:
            return self.r["received"] > 0

    def hard_limit(self):
        return receive_tail_limit(self.args)

    def work(self):
        a = self.args
        consumer = self.started(simple_consumer(a))
        producer = self.started(Producer(client_config(a), topics=[a.topic], tls_enable=a.tls))

        self.phase = "send"
        msg = Message()
        msg.topic = a.topic
        msg.body = self.body.encode("utf-8")
        msg.keys = self.body
        intended = time.time() + a.delay
        sent_ts = int(intended)   # 5.1.2 puts whole seconds into the Timestamp
        msg.delivery_timestamp = sent_ts
        with self.lock:
            self.r["intended_ms"] = round(intended * 1000)
            self.r["sent_timestamp_s"] = sent_ts
        t0 = time.monotonic()
        receipt = producer.send(msg)
        with self.lock:
            self.r["send_ms"] = round((time.monotonic() - t0) * 1000)
            self.r["sent"] = True
            self.r["message_id"] = receipt.message_id

        self.receive_then_tail(consumer, tail_await=a.tail_await)


def main():
    ap = arg_parser(__doc__, "a DELAY topic")
    ap.add_argument("--group", required=True, help="consumer group")
    ap.add_argument("--delay", type=float, default=3.0,
                    help="seconds from now to the intended delivery time (default: 3)")
    ap.add_argument("--max-late-ms", type=int, default=1500,
                    help="fail when received this late or later (default: 1500)")
    ap.add_argument("--prefix", default="delay", help="body prefix (default: delay)")
    ap.add_argument("--timeout", type=float, default=30.0,
                    help="seconds (from start) until the message must have been received (default: 30)")
    polling_options(ap, tail=2.0, tail_after="the message arrived", await_=10, tail_await=1,
                    invisible=30)
    args = ap.parse_args()
    if args.delay <= 0 or args.timeout <= 0 or args.await_duration <= 0 or args.tail_await <= 0:
        ap.error("--delay, --timeout, --await and --tail-await must be > 0")
    Run(args).run()


if __name__ == "__main__":
    main()
