#!/usr/bin/env python3
"""Transactional messages with the official RocketMQ 5 Python client.

A SimpleConsumer and a transactional Producer (with a TransactionChecker,
`topics=[topic]` so its Telemetry Settings list the topic) start. Then, each
with its own `producer.begin_transaction()` and `producer.send(msg, transaction=tx)`:

  a) "commit":   tx.commit()   -> must be received (exactly once)
  b) "rollback": tx.rollback() -> must never be received
  c) "orphan":   left unresolved (5.1.2 has no "unknown" call: the Transaction
                 is simply never committed nor rolled back). The server's orphan
                 check (RecoverOrphanedTransactionCommand on the producer's
                 Telemetry stream, after orphaned_transaction_recovery_duration)
                 calls the checker, which answers COMMIT for it -> received once.

The checker answers COMMIT for "orphan" (and "commit"), ROLLBACK for anything
else, and records every call. The consumer receives until a and c arrived (or
--timeout), then keeps receiving for --tail seconds (short polls) to make sure b
never shows up and nothing is delivered twice.

Passes if a and c were received exactly once, b never, and the checker was
called for c. Checks of a or b (already resolved) and repeated checks of c are
reported as warnings.

stdout: one JSON line, e.g. {"ok": true, "received": {"commit": 1, "rollback": 0,
"orphan": 1}, "orphan_check_after_s": 6.1, ...}. Exit codes: 0 pass, 1 check
failed, 2 error (startup, send, commit/rollback, or too many consecutive receive
errors), 3 time limit hit (--timeout for the main phase; --timeout + --tail + a
grace period in all).
The client's own log goes to ~/logs/rocketmq_python/rocketmq_client.log.

Run with the venv made by tests/scripts/setup-tools.sh.
"""
import threading
import time

from rocketmq import Message, Producer, TransactionChecker, TransactionResolution
from common import (Runner, arg_parser, client_config, delivery_problems, polling_options,
                    receive_tail_limit, simple_consumer)

NAME = "transaction"
CASES = ("commit", "rollback", "orphan")




class State:
    def __init__(self, prefix):
        run = int(time.time() * 1000)
        self.lock = threading.Lock()
        self.bodies = {case: f"{prefix}-{case}-{run}" for case in CASES}
        self.case_of_body = {b: c for c, b in self.bodies.items()}
        self.case_of_id = {}                       # message_id -> case
        self.message_ids = {}                      # case -> message_id
        self.transaction_ids = {}                  # case -> transaction_id
        self.sent_at = {}                          # case -> monotonic time of the send's return
        self.resolved_at = {}                      # case -> monotonic time commit/rollback returned
        self.received = {case: 0 for case in CASES}
        self.received_at = {}                      # case -> monotonic time of the first receive
        self.message_types = {}
        self.checks = []                           # every checker call
        self.unexpected = []
        self.acked = 0
        self.ack_errors = []
        self.receive_errors = []
        self.late = 0                              # deliveries during the tail phase


class Checker(TransactionChecker):
    """Answers COMMIT for the orphan (and the committed one), ROLLBACK otherwise."""

    def __init__(self, state):
        self.state = state

    def check(self, message):
        s = self.state
        now = time.monotonic()
        body = bytes(message.body or b"").decode("utf-8", errors="replace")
        with s.lock:
            case = s.case_of_id.get(message.message_id) or s.case_of_body.get(body)
            answer = TransactionResolution.COMMIT if case in ("orphan", "commit") else TransactionResolution.ROLLBACK
            sent = s.sent_at.get(case)
            s.checks.append({
                "case": case,
                "message_id": message.message_id,
                "body_matches": case is not None and body == s.bodies.get(case),
                "topic": message.topic,
                "after_send_s": round(now - sent, 2) if sent is not None else None,
                "answer": "COMMIT" if answer == TransactionResolution.COMMIT else "ROLLBACK",
            })
        return answer


class Run(Runner):
    name = NAME
    # Everything but the tail and the shutdown within --timeout.
    timed_phases = ("startup", "send", "receive")

    def __init__(self, args):
        super().__init__(args)
        self.s = State(args.prefix)

    def counts(self):
        s = self.s
        with s.lock:
            orphan_checks = [c for c in s.checks if c["case"] == "orphan"]
            first_check = orphan_checks[0]["after_send_s"] if orphan_checks else None
            delivered = {}
            for case, t in s.received_at.items():
                base = s.resolved_at.get(case, s.sent_at.get(case))
                delivered[case] = round(t - base, 2) if base is not None else None
            return {
                "received": dict(s.received),
                "message_ids": dict(s.message_ids),
                "transaction_ids": dict(s.transaction_ids),
                "message_types": dict(s.message_types),
                # commit: from commit() returning; orphan: from the send returning
                "delivered_after_s": delivered,
                "orphan_check_after_s": first_check,
                "checks": list(s.checks[:10]),
                "check_count": len(s.checks),
                "checks_by_case": {str(k): sum(1 for c in s.checks if c["case"] == k)
                                   for k in {c["case"] for c in s.checks}},
                "unexpected": len(s.unexpected),
                "unexpected_sample": s.unexpected[:5],
                "acked": s.acked,
                "ack_errors": len(s.ack_errors),
                "receive_errors": len(s.receive_errors),
                "late": s.late,
                "error_sample": (s.ack_errors + s.receive_errors)[:5],
            }

    def result(self):
        result = self.counts()
        warnings = []
        by_case = result["checks_by_case"]
        for case in ("commit", "rollback", "None"):
            if by_case.get(case):
                warnings.append(f"checker called {by_case[case]} time(s) for an already "
                                f"resolved or unknown transaction ({case})")
        if by_case.get("orphan", 0) > 1:
            warnings.append(f"checker called {by_case['orphan']} times for the orphan "
                            f"(after it answered COMMIT)")
        if any(c["case"] == "orphan" and not c["body_matches"] for c in result["checks"]):
            warnings.append("the orphan check's message did not carry the original body")
        result["warnings"] = warnings
        return result

    @staticmethod
    def problems(r):
        p = []
        got = r["received"]
        if got["commit"] != 1:
            p.append(f"committed message received {got['commit']} times (want 1)")
        if got["rollback"] != 0:
            p.append(f"rolled-back message received {got['rollback']} times (want 0)")
        if got["orphan"] != 1:
            p.append(f"orphan (committed by the checker) received {got['orphan']} times (want 1)")
        if r["orphan_check_after_s"] is None:
            p.append("the checker was never called for the orphan")
        return p + delivery_problems(r)

    def send(self, producer, case):
        s = self.s
        tx = producer.begin_transaction()
        msg = Message()
        msg.topic = self.args.topic
        msg.body = s.bodies[case].encode("utf-8")
        msg.keys = s.bodies[case]
        receipt = producer.send(msg, transaction=tx)
        now = time.monotonic()
        with s.lock:
            s.sent_at[case] = now
            s.message_ids[case] = receipt.message_id
            s.transaction_ids[case] = receipt.transaction_id
            s.case_of_id[receipt.message_id] = case
        if not receipt.transaction_id:
            raise RuntimeError(f"{case}: send receipt has no transaction_id")
        return tx

    def receive_once(self, consumer, tail):
        s = self.s
        messages = consumer.receive(32, self.args.invisible)
        now = time.monotonic()
        for m in messages or []:
            body = bytes(m.body or b"").decode("utf-8", errors="replace")
            with s.lock:
                case = s.case_of_body.get(body)
                if case is None:
                    s.unexpected.append(body)
                else:
                    s.received[case] += 1
                    s.received_at.setdefault(case, now)
                    s.message_types.setdefault(case, m.message_type)
                if tail:
                    s.late += 1
            try:
                consumer.ack(m)
                with s.lock:
                    s.acked += 1
            except Exception as e:  # noqa: BLE001
                with s.lock:
                    s.ack_errors.append(f"ack {m.message_id} ({body}): {type(e).__name__}: {e}")

    def receive_error(self, text):
        with self.s.lock:
            self.s.receive_errors.append(text)

    def complete(self):
        with self.s.lock:
            return bool(self.s.received["commit"] and self.s.received["orphan"])

    def hard_limit(self):
        return receive_tail_limit(self.args)

    def work(self):
        a = self.args
        consumer = self.started(simple_consumer(a))
        producer = self.started(Producer(
            client_config(a),
            topics=[a.topic], checker=Checker(self.s), tls_enable=a.tls))

        self.phase = "send"
        tx = self.send(producer, "commit")
        tx.commit()     # raises unless the status is OK
        with self.s.lock:
            self.s.resolved_at["commit"] = time.monotonic()
        tx = self.send(producer, "rollback")
        tx.rollback()
        with self.s.lock:
            self.s.resolved_at["rollback"] = time.monotonic()
        self.send(producer, "orphan")   # never committed nor rolled back

        self.receive_then_tail(consumer, tail_await=a.tail_await, tail_anyway=True)


def main():
    ap = arg_parser(__doc__, "a TRANSACTION topic")
    ap.add_argument("--group", required=True, help="consumer group")
    ap.add_argument("--prefix", default="tx", help="body prefix (default: tx)")
    ap.add_argument("--timeout", type=float, default=40.0,
                    help="seconds (from start) until the committed and the orphan message "
                         "must have been received (default: 40)")
    polling_options(ap, tail=3.0, tail_after="that, so that the rolled-back message has a "
                    "chance to show up", await_=5, tail_await=1, invisible=30)
    args = ap.parse_args()
    if args.timeout <= 0 or args.await_duration <= 0 or args.tail_await <= 0 or args.tail < 0:
        ap.error("--timeout, --await and --tail-await must be > 0; --tail >= 0")
    Run(args).run()


if __name__ == "__main__":
    main()
