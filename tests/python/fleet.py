#!/usr/bin/env python3
"""Produce and consume through a load balancer while proxies come and go.

A producer thread sends "{prefix}-{i}" for --seconds, about --rate per
second, and remembers every send the server acknowledged; a SimpleConsumer
thread receives and acks all the while. Once the producer stops, the consumer
goes on until every acknowledged body was received or --drain seconds pass.
Failed calls are expected (a proxy is killed under the clients): they are
counted and retried, never fatal. Duplicates are allowed (at-least-once);
a lost acknowledged send is not.

stdout: one JSON line {"ok", "sent", "send_errors", "received", "distinct",
"duplicates", "missing", "missing_sample", "receive_errors", "ack_errors",
"secs"}. Exit: 0 nothing lost, 1 something lost (or nothing sent), 2 error,
3 hard time limit. --tls turns the client's TLS on (trust the server's CA
through GRPC_DEFAULT_SSL_ROOTS_FILE_PATH).

Run with the venv made by tests/scripts/setup-tools.sh.
"""
import json
import os
import sys
import threading
import time

from rocketmq import FilterExpression, Message, Producer, SimpleConsumer
from common import arg_parser, client_config

lock = threading.Lock()
acked = set()
received = {}
counts = {"send_errors": 0, "receive_errors": 0, "ack_errors": 0, "startup_errors": 0}
errors = []
producing = threading.Event()
stop = threading.Event()
t0 = time.monotonic()


def note(kind, e):
    with lock:
        counts[kind] += 1
        if len(errors) < 10:
            errors.append(f"{kind}: {type(e).__name__}: {e}"[:300])


def summary():
    with lock:
        missing = sorted(acked.difference(received), key=lambda b: int(b.rsplit("-", 1)[1]))
        return {
            "ok": bool(acked) and not missing,
            "sent": len(acked),
            **counts,
            "received": sum(received.values()),
            "distinct": len(received),
            "duplicates": sum(n - 1 for n in received.values()),
            "missing": len(missing),
            "missing_sample": missing[:10],
            "errors_sample": list(errors),
            "secs": round(time.monotonic() - t0, 1),
        }


def finish(code, extra=None):
    s = summary()
    if extra:
        s.update(extra)
    print(json.dumps(s), flush=True)
    sys.stderr.flush()
    os._exit(code if code is not None else (0 if s["ok"] else 1))


def started(make):
    """Starts a client, retrying: its start-up calls may meet a dying proxy."""
    for attempt in range(10):
        client = make()
        try:
            client.startup()
            return client
        except Exception as e:  # noqa: BLE001
            note("startup_errors", e)
            try:
                client.shutdown()
            except Exception:  # noqa: BLE001
                pass
            time.sleep(1)
    raise RuntimeError("the client did not start in 10 attempts")


def produce(a):
    producer = started(lambda: Producer(
        client_config(a),
        (a.topic,), tls_enable=a.tls))
    i = 0
    end = time.monotonic() + a.seconds
    while time.monotonic() < end:
        body = f"{a.prefix}-{i}"
        i += 1
        m = Message()
        m.topic = a.topic
        m.body = body.encode()
        m.tag = "fleet"
        try:
            producer.send(m)
            with lock:
                acked.add(body)
        except Exception as e:  # noqa: BLE001  (a proxy died under the call)
            note("send_errors", e)
            time.sleep(0.2)
        time.sleep(1.0 / a.rate)
    producing.clear()
    try:
        producer.shutdown()
    except Exception:  # noqa: BLE001
        pass


def consume(a):
    try:
        consumer = started(lambda: SimpleConsumer(
            client_config(a),
            a.group, subscription={a.topic: FilterExpression("*")},
            await_duration=a.await_duration, tls_enable=a.tls))
    except Exception as e:  # noqa: BLE001
        note("startup_errors", e)
        return
    while not stop.is_set():
        try:
            msgs = consumer.receive(32, a.invisible) or []
        except Exception as e:  # noqa: BLE001
            note("receive_errors", e)
            time.sleep(0.5)
            continue
        for m in msgs:
            body = bytes(m.body or b"").decode("utf-8", errors="replace")
            with lock:
                received[body] = received.get(body, 0) + 1
            try:
                consumer.ack(m)
            except Exception as e:  # noqa: BLE001  (redelivered later)
                note("ack_errors", e)
    try:
        consumer.shutdown()
    except Exception:  # noqa: BLE001
        pass


def main():
    ap = arg_parser(__doc__)
    ap.add_argument("--group", required=True)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--rate", type=float, default=20, help="sends per second (about)")
    ap.add_argument("--drain", type=float, default=60)
    ap.add_argument("--prefix", default="py")
    ap.add_argument("--invisible", type=int, default=5)
    ap.add_argument("--await", dest="await_duration", type=int, default=5)
    a = ap.parse_args()

    hard = threading.Timer(a.seconds + a.drain + 60, lambda: finish(3, {"ok": False, "error": "hard time limit"}))
    hard.daemon = True
    hard.start()
    producing.set()
    try:
        cons = threading.Thread(target=consume, args=(a,), daemon=True)
        cons.start()
        produce(a)
    except Exception as e:  # noqa: BLE001
        finish(2, {"ok": False, "error": f"{type(e).__name__}: {e}"})
    end = time.monotonic() + a.drain
    while time.monotonic() < end:
        with lock:
            if acked.issubset(received):
                break
        time.sleep(0.5)
    stop.set()
    cons.join(timeout=a.await_duration + a.request_timeout + 5)
    finish(None)


if __name__ == "__main__":
    main()
