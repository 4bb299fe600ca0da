#!/usr/bin/env python3
"""Send N messages to a Pier server with the official RocketMQ 5 Python client.

Bodies are "{prefix}-{i}" for i in 0..N-1, each with the key "{prefix}-key-{i}"
and an optional tag. Sends are synchronous (Producer.send), in order.

stdout: exactly one JSON line, {"sent": N, "message_ids": [...]} on success; on
failure the same object plus "error", and a non-zero exit code:
  0 all sent, 2 error (startup/send failed), 3 overall --timeout hit.
The client's own log goes to ~/logs/rocketmq_python/rocketmq_client.log.

Run with the venv made by tests/scripts/setup-tools.sh.
"""
import json
import logging
import os
import sys
import threading

from rocketmq import Message, Producer
from common import EXIT_ERROR, EXIT_OK, EXIT_TIMEOUT, arg_parser, client_config, shutdown_quietly


_out_lock = threading.Lock()
_done = False




def finish(code, result, error=None):
    """Print the one JSON line (once) and leave at once, whatever threads remain."""
    global _done
    with _out_lock:
        if _done:
            return
        _done = True
        if error is not None:
            result = dict(result, error=error)
            print(f"producer: error: {error}", file=sys.stderr)
        print(json.dumps(result), flush=True)
        sys.stderr.flush()
        logging.shutdown()
        # os._exit: the client's gRPC/asyncio threads must never keep us alive.
        os._exit(code)


def main():
    ap = arg_parser(__doc__)
    ap.add_argument("--count", required=True, type=int, help="number of messages to send")
    ap.add_argument("--tag", default=None, help="tag set on every message")
    ap.add_argument("--prefix", default="msg", help='body prefix: bodies are "{prefix}-{i}" (default: msg)')
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="hard limit in seconds for the whole run, shutdown included (default: 120)")
    args = ap.parse_args()
    if args.count < 0:
        ap.error("--count must be >= 0")

    message_ids = []
    state = {"phase": "startup"}

    def snapshot():
        return {"sent": len(message_ids), "message_ids": list(message_ids)}

    def on_timeout():
        finish(EXIT_TIMEOUT, snapshot(),
               f"timed out after {args.timeout}s during {state['phase']} "
               f"({len(message_ids)}/{args.count} sent)")

    watchdog = threading.Timer(args.timeout, on_timeout)
    watchdog.daemon = True
    watchdog.start()

    producer = None
    try:
        config = client_config(args)
        producer = Producer(config, topics=[args.topic], tls_enable=args.tls)
        producer.startup()
        state["phase"] = "send"
        for i in range(args.count):
            msg = Message()
            msg.topic = args.topic
            msg.body = f"{args.prefix}-{i}".encode("utf-8")
            msg.keys = f"{args.prefix}-key-{i}"
            if args.tag:
                msg.tag = args.tag
            receipt = producer.send(msg)
            if not receipt.message_id:
                raise RuntimeError(f"message {i}: send receipt has an empty message_id")
            message_ids.append(receipt.message_id)
        state["phase"] = "shutdown"
        producer.shutdown()
        producer = None
    except Exception as e:  # noqa: BLE001 - report whatever the client raised
        err = f"{state['phase']} failed after {len(message_ids)}/{args.count} sent: {type(e).__name__}: {e}"
        shutdown_quietly(producer)
        finish(EXIT_ERROR, snapshot(), err)
    finish(EXIT_OK, snapshot())


if __name__ == "__main__":
    main()
