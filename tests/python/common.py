"""Helpers shared by the official-client test scripts of this folder.

Each script drives the official RocketMQ 5 Python client, prints one JSON
summary line on stdout and exits with one of the codes below. What they all
need lives here: the endpoint argument, the exactly-once tracker of the
consumer scripts, the push consumer that counts its acks, and the verdict
and exit path.
"""
import argparse
import json
import logging
import os
import sys
import threading
import time

from rocketmq import (ClientConfiguration, ConsumeResult, Credentials, FilterExpression,
                      MessageListener, SimpleConsumer)

EXIT_OK, EXIT_FAILED, EXIT_ERROR, EXIT_TIMEOUT = 0, 1, 2, 3


def endpoint_arg(value):
    """argparse type: HOST:PORT, with an optional http:// or https:// dropped."""
    v = value
    for p in ("http://", "https://"):
        if v.startswith(p):
            v = v[len(p):]
    host, sep, port = v.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return v


def arg_parser(doc, topic_help=None):
    """The scripts' command line: described by the first paragraph of `doc`,
    with the options every script has (--endpoint, --topic, --request-timeout)."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--endpoint", required=True, type=endpoint_arg, help="HOST:PORT of the server")
    ap.add_argument("--topic", required=True, help=topic_help)
    ap.add_argument("--request-timeout", type=int, default=3,
                    help="client RPC timeout in whole seconds (default: 3)")
    ap.add_argument("--access-key", default="", help="sign calls as this user (server with auth on)")
    ap.add_argument("--secret-key", default="", help="the user's secret key")
    ap.add_argument("--tls", action="store_true",
                    help="turn the client's TLS on (it trusts the roots in "
                         "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH, else the system's)")
    return ap


def consumer_arg_parser(doc, timeout_help, invisible_help):
    """arg_parser with the options of the scripts consuming "{prefix}-{i}"
    bodies exactly once: --group, --expect, --timeout, --prefix, --invisible
    and --tag."""
    ap = arg_parser(doc)
    ap.add_argument("--group", required=True, help="consumer group")
    ap.add_argument("--expect", required=True, type=int, help="number of bodies expected")
    ap.add_argument("--timeout", required=True, type=float, help=timeout_help)
    ap.add_argument("--prefix", default="msg", help='body prefix: bodies are "{prefix}-{i}" (default: msg)')
    ap.add_argument("--invisible", type=int, default=30, help=invisible_help)
    ap.add_argument("--tag", default="*", help='TAG filter expression (default: "*")')
    return ap


def polling_options(ap, tail, tail_after, verb="receiving", await_=None, tail_await=None,
                    invisible=None):
    """Adds the timing options of a script that receives until what it expects
    came, then goes on a while (--tail) to catch what should not come:
    --tail, and when given a default, --await (long polling), --tail-await
    (long polling during the tail) and --invisible."""
    if await_ is not None:
        ap.add_argument("--await", dest="await_duration", type=int, default=await_,
                        help=f"long-polling await duration in whole seconds (default: {await_})")
    ap.add_argument("--tail", type=float, default=tail,
                    help=f"seconds to keep {verb} after {tail_after} (default: {tail:g})")
    if tail_await is not None:
        ap.add_argument("--tail-await", type=int, default=tail_await,
                        help=f"await duration in whole seconds during the tail (default: {tail_await})")
    if invisible is not None:
        ap.add_argument("--invisible", type=int, default=invisible,
                        help=f"invisible duration in whole seconds for each receive (default: {invisible})")


def client_config(a):
    """The client configuration of the parsed command line `a`: its endpoint,
    the user's keys and the request timeout."""
    return ClientConfiguration(a.endpoint, Credentials(a.access_key, a.secret_key),
                               request_timeout=a.request_timeout)


def simple_consumer(a, tag="*"):
    """A SimpleConsumer of `a.group` on `a.topic` filtering on `tag`, long-polling
    `a.await_duration` seconds, with TLS as `a.tls` says (not started yet)."""
    return SimpleConsumer(client_config(a), a.group, subscription={a.topic: FilterExpression(tag)},
                          await_duration=a.await_duration, tls_enable=a.tls)


def receive_tail_limit(a):
    """The hard limit of a script receiving through the main phase and a tail
    (--timeout, --tail, --tail-await), with grace for three requests and the
    shutdown."""
    return a.timeout + a.tail + a.tail_await + 3 * a.request_timeout + 10


def count_delivery(t, tail, corrupted):
    """Counts one delivery on tracker `t` (its lock held): in all, in the
    tail phase, and with a corrupted body."""
    t.deliveries += 1
    if tail:
        t.late += 1
    if corrupted:
        t.corrupted += 1


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
            count_delivery(self, tail, corrupted)
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
            missing = sorted(self.expected.difference(self.by_body), key=natural)
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


def natural(body):
    """Sort key putting "x-2" before "x-10"."""
    head, _, tail = body.rpartition("-")
    return (head, int(tail)) if tail.isdigit() else (body, -1)


def tracker_problems(r):
    """The exactly-once failures of a Tracker summary, as sentences."""
    p = []
    if r["missing"]:
        p.append(f"{r['missing']} expected bodies missing (e.g. {r['missing_sample'][:3]})")
    if r["duplicates"]:
        p.append(f"{r['duplicates']} duplicate deliveries (e.g. {r['duplicate_sample'][:1]})")
    return p + delivery_problems(r)


def delivery_problems(r):
    """What a summary with `unexpected` and `ack_errors` counts (and their
    samples) and perhaps `corrupted` says went wrong with the deliveries, as
    sentences."""
    p = []
    if r["unexpected"]:
        p.append(f"{r['unexpected']} unexpected bodies (e.g. {r['unexpected_sample'][:3]})")
    if r.get("corrupted"):
        p.append(f"{r['corrupted']} messages flagged corrupted (body digest mismatch)")
    if r["ack_errors"]:
        p.append(f"{r['ack_errors']} acks failed (e.g. {r['error_sample'][:1]})")
    return p


class RecordingListener(MessageListener):
    """A push consumer's listener recording each delivery in `tracker`
    (`tracker.record(body, key(message), attempt, corrupted, tail)`); it always
    succeeds, so the client acks."""

    def __init__(self, tracker, runner, key):
        self.tracker = tracker
        self.runner = runner
        self.key = key

    def consume(self, message):
        try:
            body = bytes(message.body or b"").decode("utf-8", errors="replace")
            self.tracker.record(body, self.key(message), message.delivery_attempt,
                                message.corrupted, tail=self.runner.phase == "tail")
        except Exception as e:  # noqa: BLE001 - never fail the delivery because of us
            print(f"{self.runner.name}: listener error: {type(e).__name__}: {e}", file=sys.stderr)
        return ConsumeResult.SUCCESS


class CountingAcks:
    """Mixin for PushConsumer counting the outcome of the acks (and nacks) it sends.

    PushConsumer acks through Consumer._ack(message) after the listener returned
    SUCCESS, and nacks through Consumer._change_invisible_duration(); both raise on
    a failed RPC or a non-OK status. The client retries a failed ack every 1 s.
    `tracker` needs `lock`, `acked`, `ack_errors` and `nacks`.
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
    """What every script's runner shares: the start, the phase it is in, the
    clients it started, a watchdog, and one JSON summary line at the end.

    A subclass gives `work()` (the scenario; it starts each client through
    `started`), `hard_limit()` (seconds after which anything is cut short),
    `result()` (the summary's fields, read once) and `problems(result)` (what
    makes an otherwise clean run fail). `run` does the rest; `finish` prints
    the line once and exits, whichever thread calls it first.
    """

    name = "script"
    # Phases that must be over within --timeout (+ timeout_grace) of the start.
    timed_phases = ()
    timeout_grace = 0.0

    def __init__(self, args):
        self.args = args
        self.start = time.monotonic()
        self.phase = "startup"
        self.clients = []
        self.out_lock = threading.Lock()
        self.done = False

    def work(self):
        raise NotImplementedError

    def hard_limit(self):
        raise NotImplementedError

    def result(self):
        return {}

    def problems(self, result):
        return []

    def shown(self, result):
        """The summary as printed, once judged (e.g. long lists cut short)."""
        return result

    def timeout_message(self):
        return f"--timeout {self.args.timeout}s hit during {self.phase}"

    def started(self, client):
        """Starts `client` and keeps it, to be shut down at the end."""
        self.clients.append(client)
        try:
            client.startup()
        except AttributeError as e:
            # 5.1.2 masks its IllegalStateException ("failed to receive initial
            # settings from server within 10s") behind this AttributeError.
            raise RuntimeError(
                f"{e} -- the 5.1.2 client's mask for: no Settings reply with status OK "
                f"on the Telemetry stream within 10 s (or QueryRoute failed)") from e
        return client

    def run(self):
        """Runs `work()` under the watchdog, then shuts the clients down, the
        last started first; an exception ends the run with EXIT_ERROR naming
        the phase it happened in."""
        self.start_watchdog(self.hard_limit())
        try:
            self.work()
            self.phase = "shutdown"
            while self.clients:
                self.clients[-1].shutdown()
                self.clients.pop()
        except Exception as e:  # noqa: BLE001 - report whatever the client raised
            err = f"{self.phase}: {type(e).__name__}: {e}"
            shutdown_quietly(*reversed(self.clients))
            self.finish(EXIT_ERROR, err)
        self.finish(EXIT_OK)

    def receive_once(self, consumer, tail):
        raise NotImplementedError

    def receive_error(self, text):
        raise NotImplementedError

    def complete(self):
        """Whether the main phase of `loop` has everything it waits for."""
        raise NotImplementedError

    def loop(self, consumer, until, stop_when_complete, tail):
        """`receive_loop` until the monotonic time `until` and, with
        `stop_when_complete`, until `complete()` holds."""
        def done():
            return stop_when_complete and self.complete()
        # --max-errors where the script has it.
        self.receive_loop(consumer, until, tail, done, max_errors=getattr(self.args, "max_errors", 3))

    def receive_then_tail(self, consumer, tail_await=None, tail_anyway=False):
        """The receive phase until --timeout or `complete()`, then, once
        complete (or anyway with `tail_anyway`) and with --tail > 0, a tail of
        --tail seconds, long-polling `tail_await` seconds if given."""
        a = self.args
        self.phase = "receive"
        self.loop(consumer, self.start + a.timeout, stop_when_complete=True, tail=False)
        if a.tail > 0 and (tail_anyway or self.complete()):
            self.phase = "tail"
            if tail_await is not None:
                consumer.await_duration = tail_await
            self.loop(consumer, time.monotonic() + a.tail, stop_when_complete=False, tail=True)

    def receive_loop(self, consumer, until, tail, done, max_errors=3):
        """Calls `receive_once(consumer, tail)` until the monotonic time
        `until` or until `done()` holds. A failed receive is noted through
        `receive_error` and tried again after up to 1 s; `max_errors` failures
        in a row end the run."""
        consecutive = 0
        while time.monotonic() < until and not done():
            try:
                self.receive_once(consumer, tail)
                consecutive = 0
            except Exception as e:  # noqa: BLE001
                consecutive += 1
                self.receive_error(f"receive: {type(e).__name__}: {e}")
                if consecutive >= max_errors:
                    raise RuntimeError(f"{consecutive} consecutive receive errors, last: {type(e).__name__}: {e}")
                time.sleep(min(1.0, max(0.0, until - time.monotonic())))

    def start_watchdog(self, hard):
        """Ends the run with EXIT_TIMEOUT when a phase of `timed_phases` is
        still on --timeout + `timeout_grace` seconds after the start, or
        anything after `hard` seconds."""
        def watch():
            while True:
                time.sleep(0.2)
                elapsed = time.monotonic() - self.start
                if self.phase in self.timed_phases and elapsed > self.args.timeout + self.timeout_grace:
                    self.finish(EXIT_TIMEOUT, self.timeout_message())
                if elapsed > hard:
                    self.finish(EXIT_TIMEOUT, f"hard time limit {hard:.0f}s hit during {self.phase}")
        threading.Thread(target=watch, daemon=True).start()

    def finish(self, code, error=None):
        with self.out_lock:
            if self.done:
                return
            self.done = True
            result = self.result()
            ok, code, error = judge(code, error, self.problems(result) if code == EXIT_OK else [])
            emit(self.name, ok, code, error, self.phase, self.start, self.shown(result))


def judge(code, error, problems):
    """(ok, code, error) once a run ended with `code`: a clean run with
    problems becomes a failed check."""
    ok = code == EXIT_OK
    if ok and problems:
        ok, code = False, EXIT_FAILED
        error = "; ".join(problems)
    return ok, code, error


def emit(name, ok, code, error, phase, start, result):
    """Prints the JSON summary line and exits with `code` at once."""
    result = dict({"ok": ok, "phase": phase,
                   "elapsed_s": round(time.monotonic() - start, 2)}, **result)
    if error:
        result["error"] = error
        print(f"{name}: {'FAIL' if code == EXIT_FAILED else 'error'}: {error}", file=sys.stderr)
    print(json.dumps(result), flush=True)
    sys.stderr.flush()
    logging.shutdown()
    # os._exit: the client's gRPC/asyncio threads must never keep us alive.
    os._exit(code)


def shutdown_quietly(*clients):
    """Shuts down every running client, ignoring errors (used on the error path)."""
    for c in clients:
        if c is not None and c.is_running:
            try:
                c.shutdown()
            except Exception:  # noqa: BLE001
                pass
