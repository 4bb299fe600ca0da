// pier-go-scenarios drives Pier with the official RocketMQ 5 Go client
// (github.com/apache/rocketmq-clients/golang/v5) and prints one JSON summary
// line on stdout per run; tests/tests/e2e/official_go.rs asserts on it. The
// client's own log goes to stderr.
//
// Usage: pier-go-scenarios -case <name> -endpoint 127.0.0.1:A[;127.0.0.1:B]
// -topic T -group G [case flags]. Cases: normal, async, invisible, filter,
// fifo, delay, transaction, retry, load (see cases.go).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
	"github.com/apache/rocketmq-clients/golang/v5/credentials"
)

var (
	flagCase     = flag.String("case", "", "scenario to run")
	flagEndpoint = flag.String("endpoint", "", "access point: host:port, several joined with ';'")
	flagTopic    = flag.String("topic", "", "topic (created beforehand)")
	flagGroup    = flag.String("group", "", "consumer group (created beforehand)")
	flagDlqGroup = flag.String("dlq-group", "", "retry: group that reads %DLQ%<group>")
	flagCount    = flag.Int("count", 100, "messages to send (per message group for fifo)")
	flagGroups   = flag.Int("groups", 4, "fifo: message groups per producer")
	flagProds    = flag.Int("producers", 3, "fifo, load: producers sending at the same time")
	flagDelayMs  = flag.Int("delay-ms", 3000, "delay: how far in the future messages are due")
	flagOrphans  = flag.Int("orphans", 2, "transaction: transactions left open for the checker")
	flagAttempts = flag.Int("max-attempts", 3, "retry: the group's max_attempts")
	flagInvisMs  = flag.Int("invisible-ms", 2000, "invisible: the new invisible duration")
	flagFailSeq  = flag.Int("fail-once-seq", -1, "fifo: the first delivery of this sequence number fails once")
	flagConsumer = flag.String("consumer", "simple", "load: simple or push")
	flagTimeout  = flag.Int("timeout", 120, "seconds before the run gives up")
	flagTLS      = flag.Bool("tls", false, "keep the client's default TLS on (it trusts any certificate)")
	flagLogLevel = flag.String("log-level", "warn", "client log level (to stderr): debug, info, warn, error")
)

// A result is the JSON summary, filled in as the case goes so the watchdog
// can print how far it got.
type result struct {
	mu sync.Mutex
	m  map[string]any
}

func (r *result) set(k string, v any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m[k] = v
}

func (r *result) fail(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	if prev, ok := r.m["errors"].([]string); ok {
		if len(prev) < 20 {
			r.m["errors"] = append(prev, msg)
		}
	} else {
		r.m["errors"] = []string{msg}
	}
}

func (r *result) json() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, err := json.Marshal(r.m)
	if err != nil {
		return []byte(fmt.Sprintf(`{"ok":false,"error":%q}`, err.Error()))
	}
	return b
}

var (
	stdout   *os.File
	started  = time.Now()
	deadline time.Time
	res      = &result{m: map[string]any{}}
)

func main() {
	flag.Parse()
	// The client logs to a file under $HOME or to os.Stdout; stdout is for
	// the summary, so the console log goes to stderr instead.
	stdout = os.Stdout
	os.Stdout = os.Stderr
	_ = os.Setenv(rmq.ENABLE_CONSOLE_APPENDER, "true")
	_ = os.Setenv(rmq.CLIENT_LOG_LEVEL, *flagLogLevel)
	rmq.ResetLogger()
	// The client defaults to TLS (protocol.md §6.2); the tests turn it off
	// unless -tls (a Pier with a certificate serves both on one port).
	rmq.EnableSsl = *flagTLS

	deadline = started.Add(time.Duration(*flagTimeout) * time.Second)
	res.set("case", *flagCase)
	res.set("ok", false)
	if *flagEndpoint == "" || *flagTopic == "" {
		finish(fmt.Errorf("-endpoint and -topic are required"))
	}
	res.set("addresses", len(strings.Split(*flagEndpoint, ";")))

	// The watchdog: a client call that never returns still ends the run with
	// a summary (ok=false), well after the case's own deadline.
	go func() {
		time.Sleep(time.Until(deadline) + 20*time.Second)
		res.set("ok", false)
		res.set("error", fmt.Sprintf("watchdog: the run did not end within %d s", *flagTimeout+20))
		emit()
		os.Exit(3)
	}()

	cases := map[string]func() error{
		"normal":      caseNormal,
		"async":       caseAsync,
		"invisible":   caseInvisible,
		"filter":      caseFilter,
		"fifo":        caseFifo,
		"delay":       caseDelay,
		"transaction": caseTransaction,
		"retry":       caseRetry,
		"load":        caseLoad,
	}
	run, ok := cases[*flagCase]
	if !ok {
		names := make([]string, 0, len(cases))
		for n := range cases {
			names = append(names, n)
		}
		sort.Strings(names)
		finish(fmt.Errorf("unknown -case %q (one of %s)", *flagCase, strings.Join(names, ", ")))
	}
	finish(run())
}

// finish prints the summary and exits: 0 when the case returned no error
// and recorded no problem, 1 otherwise.
func finish(err error) {
	if err != nil {
		res.set("error", err.Error())
	}
	res.mu.Lock()
	_, problems := res.m["errors"]
	ok := err == nil && !problems
	res.m["ok"] = ok
	res.m["elapsed_s"] = float64(time.Since(started).Milliseconds()) / 1000
	res.mu.Unlock()
	emit()
	if !ok {
		os.Exit(1)
	}
	os.Exit(0)
}

func emit() {
	line := append(res.json(), '\n')
	_, _ = stdout.Write(line)
}

// --- clients ---------------------------------------------------------------------

func config(group string) *rmq.Config {
	return &rmq.Config{
		Endpoint:      *flagEndpoint,
		ConsumerGroup: group,
		// Pier does not check signatures; sending them still exercises the
		// authorization header the client builds.
		Credentials: &credentials.SessionCredentials{AccessKey: "pier", AccessSecret: "pier"},
	}
}

// addSeconds adds d to the summary's timing field k.
func addSeconds(k string, d time.Duration) {
	res.mu.Lock()
	defer res.mu.Unlock()
	prev, _ := res.m[k].(float64)
	res.m[k] = prev + d.Seconds()
}

// bounded runs f, giving up after within: the client's Start() loops until
// a Settings reply comes (protocol.md §6.2), and stops can hang on a broken
// connection.
func bounded(what string, within time.Duration, f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	case <-time.After(within):
		return fmt.Errorf("%s: no return within %v", what, within)
	}
}

type stopper interface{ GracefulStop() error }

// stop stops clients in turn, recording (not returning) failures.
func stop(clients ...stopper) {
	t0 := time.Now()
	defer func() { addSeconds("stop_s", time.Since(t0)) }()
	for _, c := range clients {
		if c == nil {
			continue
		}
		if err := bounded("GracefulStop", 15*time.Second, c.GracefulStop); err != nil {
			res.fail("%v", err)
		}
	}
}

// leavePush starts a push consumer's GracefulStop without waiting for it.
// In v5.1.4 that stop first waits for the consumer's in-flight receives, and
// a receive that comes back empty (MESSAGE_NOT_FOUND) is never counted as
// finished (receiveMessageImmediatelyWithAttemptId skips doAfter for it), so
// the stop always waits its full bound: request timeout + the server's
// long_polling_timeout (3 s + 20 s with Pier) + 1 s. The stop flag it sets
// at once ends the receive loop; the process exit closes the connection.
func leavePush(c rmq.PushConsumer) {
	go func() { _ = c.GracefulStop() }()
}

// startTimed runs a client's Start, bounded to 30 s, and adds the time it
// took to start_s. It returns the client only when it started: callers
// retry while the client they get back is nil.
func startTimed[C any](c C, what string, start func() error) (C, error) {
	t0 := time.Now()
	defer func() { addSeconds("start_s", time.Since(t0)) }()
	if err := bounded(what+" Start", 30*time.Second, start); err != nil {
		var none C
		return none, err
	}
	return c, nil
}

func startProducer(topics []string, opts ...rmq.ProducerOption) (rmq.Producer, error) {
	// Without WithTopics, Start() never returns (protocol.md §6.2).
	opts = append(opts, rmq.WithTopics(topics...))
	p, err := rmq.NewProducer(config(""), opts...)
	if err != nil {
		return nil, fmt.Errorf("NewProducer: %w", err)
	}
	return startTimed(p, "producer", p.Start)
}

// awaitDuration of simple consumers. The client sends no
// long_polling_timeout, only a deadline of awaitDuration + its 3 s request
// timeout, and Pier polls for that deadline minus 1.5 s (protocol.md §6.2):
// 500 ms here gives 2 s polls, so an empty receive ends a tail quickly.
const awaitDuration = 500 * time.Millisecond

func startSimple(group, topic string, filter *rmq.FilterExpression) (rmq.SimpleConsumer, error) {
	c, err := rmq.NewSimpleConsumer(config(group),
		rmq.WithSimpleAwaitDuration(awaitDuration),
		rmq.WithSimpleSubscriptionExpressions(map[string]*rmq.FilterExpression{topic: filter}),
	)
	if err != nil {
		return nil, fmt.Errorf("NewSimpleConsumer: %w", err)
	}
	return startTimed(c, "simple consumer", c.Start)
}

func startPush(group, topic string, filter *rmq.FilterExpression, threads int32, fifoAccel bool,
	consume func(*rmq.MessageView) rmq.ConsumerResult) (rmq.PushConsumer, error) {
	c, err := rmq.NewPushConsumer(config(group),
		rmq.WithPushSubscriptionExpressions(map[string]*rmq.FilterExpression{topic: filter}),
		rmq.WithPushConsumptionThreadCount(threads),
		rmq.WithPushEnableFifoConsumeAccelerator(fifoAccel),
		rmq.WithPushMessageListener(&rmq.FuncMessageListener{Consume: consume}),
	)
	if err != nil {
		return nil, fmt.Errorf("NewPushConsumer: %w", err)
	}
	return startTimed(c, "push consumer", c.Start)
}

// isEmpty tells an empty receive (MESSAGE_NOT_FOUND, code 40401, reaches
// the user as an error) from a real failure.
func isEmpty(err error) bool {
	if e, ok := rmq.AsErrRpcStatus(err); ok {
		return e.GetCode() == 40401
	}
	return false
}

// receiveUntil receives (batches of up to 32, invisible for `invisible`)
// and hands every message to handle until done() is true or the deadline
// passes. Receive errors other than "no message" are recorded.
func receiveUntil(c rmq.SimpleConsumer, invisible time.Duration, done func() bool, handle func(*rmq.MessageView)) {
	for !done() && time.Now().Before(deadline) {
		mvs, err := c.Receive(ctxBg(), 32, invisible)
		if err != nil {
			if !isEmpty(err) {
				res.fail("Receive: %v", err)
				time.Sleep(200 * time.Millisecond)
			}
			continue
		}
		for _, mv := range mvs {
			handle(mv)
		}
	}
}

// drainQuiet receives until `empties` receives in a row come back empty,
// handing over whatever arrives (to prove nothing more is delivered).
func drainQuiet(c rmq.SimpleConsumer, invisible time.Duration, empties int, handle func(*rmq.MessageView)) {
	t0 := time.Now()
	defer func() { addSeconds("tail_s", time.Since(t0)) }()
	left := empties
	for left > 0 && time.Now().Before(deadline) {
		mvs, err := c.Receive(ctxBg(), 32, invisible)
		if err != nil {
			if !isEmpty(err) {
				res.fail("Receive: %v", err)
			}
			left--
			continue
		}
		if len(mvs) == 0 {
			left--
		}
		for _, mv := range mvs {
			handle(mv)
		}
	}
}
