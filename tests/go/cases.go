package main

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	rmq "github.com/apache/rocketmq-clients/golang/v5"
)

func ctxBg() context.Context { return context.Background() }

// sendOne sends m synchronously and returns the message id of its receipt.
func sendOne(p rmq.Producer, m *rmq.Message) (string, error) {
	r, err := p.Send(ctxBg(), m)
	if err != nil {
		return "", err
	}
	if len(r) != 1 || r[0].MessageID == "" {
		return "", fmt.Errorf("expected one receipt with a message id, got %d", len(r))
	}
	return r[0].MessageID, nil
}

// richMessage is message i of the normal case: a body with bytes that are
// not text (and 1 MiB for i == 0, under the client's 2 MiB send cap), a
// tag, two keys and user properties with non-ASCII values.
func richMessage(topic string, i int) *rmq.Message {
	body := []byte(fmt.Sprintf("go-%d|", i))
	body = append(body, 0x00, 0x01, 0xfe, 0xff, '\n')
	if i == 0 {
		big := make([]byte, 1<<20)
		for j := range big {
			big[j] = byte(j * 7)
		}
		body = append(body, big...)
	}
	m := &rmq.Message{Topic: topic, Body: body}
	m.SetTag(fmt.Sprintf("tag%d", i%3))
	m.SetKeys(fmt.Sprintf("key-%d", i), fmt.Sprintf("alt-%d", i))
	m.AddProperty("index", strconv.Itoa(i))
	m.AddProperty("note", "grüße ✓ 日本")
	m.AddProperty("with space", "a=b; c")
	return m
}

// differs says how the delivered message differs from what was sent ("" if
// it arrived intact).
func differs(want *rmq.Message, got *rmq.MessageView) string {
	switch {
	case got.GetTopic() != want.Topic:
		return fmt.Sprintf("topic %q, sent %q", got.GetTopic(), want.Topic)
	case !bytes.Equal(got.GetBody(), want.Body):
		return fmt.Sprintf("body of %d bytes differs from the %d bytes sent", len(got.GetBody()), len(want.Body))
	case !reflect.DeepEqual(got.GetTag(), want.GetTag()):
		return fmt.Sprintf("tag %v, sent %v", deref(got.GetTag()), deref(want.GetTag()))
	case !reflect.DeepEqual(got.GetKeys(), want.GetKeys()):
		return fmt.Sprintf("keys %q, sent %q", got.GetKeys(), want.GetKeys())
	case !reflect.DeepEqual(got.GetProperties(), want.GetProperties()):
		return fmt.Sprintf("properties %q, sent %q", got.GetProperties(), want.GetProperties())
	case got.GetBornTimestamp() == nil || got.GetBornHost() == nil || *got.GetBornHost() == "":
		return "born timestamp or born host missing"
	case got.GetReceiptHandle() == "":
		return "no receipt handle"
	}
	return ""
}

func deref(s *string) string {
	if s == nil {
		return "<none>"
	}
	return *s
}

// consumeAll receives with a simple consumer until every message of sent
// (message id → what was sent) arrived, acks each delivery, then keeps
// receiving until two receives in a row are empty, and records what it saw.
func consumeAll(group, topic string, sent map[string]*rmq.Message) error {
	c, err := startSimple(group, topic, rmq.SUB_ALL)
	if err != nil {
		return err
	}
	defer stop(c)
	seen := map[string]int{}
	var dup, unexpected, mismatched, ackErrors, firstAttemptNot1 int
	t0 := time.Now()
	handle := func(mv *rmq.MessageView) {
		id := mv.GetMessageId()
		want, ok := sent[id]
		switch {
		case !ok:
			unexpected++
			res.fail("unexpected message %s", id)
		case seen[id] > 0:
			dup++
		default:
			if d := differs(want, mv); d != "" {
				mismatched++
				res.fail("message %s: %s", id, d)
			}
			if mv.GetDeliveryAttempt() != 1 {
				firstAttemptNot1++
				res.fail("message %s: first delivery has attempt %d", id, mv.GetDeliveryAttempt())
			}
		}
		seen[id]++
		if err := c.Ack(ctxBg(), mv); err != nil {
			ackErrors++
			res.fail("ack %s: %v", id, err)
		}
	}
	receiveUntil(c, 20*time.Second, func() bool { return len(seen) >= len(sent) }, handle)
	res.set("consume_s", time.Since(t0).Seconds())
	drainQuiet(c, 20*time.Second, 2, handle)
	missing := 0
	for id := range sent {
		if seen[id] == 0 {
			missing++
		}
	}
	if missing > 0 {
		res.fail("%d messages never arrived", missing)
	}
	if dup > 0 {
		res.fail("%d duplicate deliveries", dup)
	}
	res.set("received", len(seen))
	res.set("duplicates", dup)
	res.set("missing", missing)
	res.set("unexpected", unexpected)
	res.set("mismatched", mismatched)
	res.set("ack_errors", ackErrors)
	return nil
}

// caseNormal: synchronous sends of messages with tags, keys and properties;
// a simple consumer receives and acks them all; everything arrives intact,
// once.
func caseNormal() error {
	p, err := startProducer([]string{*flagTopic})
	if err != nil {
		return err
	}
	sent := map[string]*rmq.Message{}
	for i := 0; i < *flagCount; i++ {
		m := richMessage(*flagTopic, i)
		id, err := sendOne(p, m)
		if err != nil {
			res.fail("send %d: %v", i, err)
			continue
		}
		sent[id] = m
	}
	stop(p)
	res.set("sent", len(sent))
	return consumeAll(*flagGroup, *flagTopic, sent)
}

// caseAsync: every message is sent with SendAsync at once; every callback
// must report success, and the consumer gets each message once.
func caseAsync() error {
	p, err := startProducer([]string{*flagTopic})
	if err != nil {
		return err
	}
	var mu sync.Mutex
	sent := map[string]*rmq.Message{}
	var wg sync.WaitGroup
	var sendErrors atomic.Int32
	t0 := time.Now()
	for i := 0; i < *flagCount; i++ {
		m := richMessage(*flagTopic, i+1) // no 1 MiB body here
		wg.Add(1)
		p.SendAsync(ctxBg(), m, func(_ context.Context, r []*rmq.SendReceipt, err error) {
			defer wg.Done()
			if err == nil && (len(r) != 1 || r[0].MessageID == "") {
				err = fmt.Errorf("expected one receipt with a message id, got %d", len(r))
			}
			if err != nil {
				sendErrors.Add(1)
				res.fail("async send: %v", err)
				return
			}
			mu.Lock()
			sent[r[0].MessageID] = m
			mu.Unlock()
		})
	}
	if !waitTimeout(&wg, time.Until(deadline)) {
		return fmt.Errorf("not every SendAsync callback ran before the deadline")
	}
	res.set("send_s", time.Since(t0).Seconds())
	stop(p)
	res.set("sent", len(sent))
	res.set("send_errors", int(sendErrors.Load()))
	return consumeAll(*flagGroup, *flagTopic, sent)
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// caseInvisible: two messages are received (invisible for 30 s). "back"
// gets a new invisible duration of -invisible-ms and must be delivered
// again after it (not before), with delivery attempt 2; "acked" gets 30 s
// and is then acked with the receipt handle the change returned, so it must
// not come back.
func caseInvisible() error {
	p, err := startProducer([]string{*flagTopic})
	if err != nil {
		return err
	}
	ids := map[string]string{}
	for _, name := range []string{"back", "acked"} {
		id, err := sendOne(p, &rmq.Message{Topic: *flagTopic, Body: []byte(name)})
		if err != nil {
			return fmt.Errorf("send %s: %w", name, err)
		}
		ids[id] = name
	}
	stop(p)

	c, err := startSimple(*flagGroup, *flagTopic, rmq.SUB_ALL)
	if err != nil {
		return err
	}
	defer stop(c)
	first := map[string]*rmq.MessageView{}
	receiveUntil(c, 30*time.Second, func() bool { return len(first) == 2 }, func(mv *rmq.MessageView) {
		name, ok := ids[mv.GetMessageId()]
		if !ok || first[name] != nil {
			res.fail("unexpected delivery of %s (%q)", mv.GetMessageId(), mv.GetBody())
			return
		}
		first[name] = mv
	})
	if len(first) != 2 {
		return fmt.Errorf("received %d of 2 messages", len(first))
	}
	res.set("first_attempt", first["back"].GetDeliveryAttempt())

	acked := first["acked"]
	oldHandle := acked.GetReceiptHandle()
	if err := c.ChangeInvisibleDuration(acked, 30*time.Second); err != nil {
		res.fail("ChangeInvisibleDuration(acked): %v", err)
	}
	res.set("handle_changed", acked.GetReceiptHandle() != oldHandle)
	if err := c.Ack(ctxBg(), acked); err != nil {
		res.fail("ack with the changed handle: %v", err)
	}

	back := first["back"]
	newInvisible := time.Duration(*flagInvisMs) * time.Millisecond
	t0 := time.Now()
	if err := c.ChangeInvisibleDuration(back, newInvisible); err != nil {
		return fmt.Errorf("ChangeInvisibleDuration(back): %w", err)
	}
	var again *rmq.MessageView
	var backAfter time.Duration
	receiveUntil(c, 30*time.Second, func() bool { return again != nil }, func(mv *rmq.MessageView) {
		if ids[mv.GetMessageId()] != "back" || again != nil {
			res.fail("unexpected delivery of %s (%q)", mv.GetMessageId(), mv.GetBody())
			return
		}
		backAfter = time.Since(t0)
		again = mv
	})
	if again == nil {
		return fmt.Errorf("the message did not come back after ChangeInvisibleDuration(%v)", newInvisible)
	}
	res.set("back_after_ms", backAfter.Milliseconds())
	res.set("second_attempt", again.GetDeliveryAttempt())
	// The server counts from when the change reaches it (after t0), in whole
	// milliseconds: a few ms of slack for the rounding.
	if backAfter < newInvisible-5*time.Millisecond {
		res.fail("came back after %v, before the new invisible duration %v", backAfter, newInvisible)
	}
	if again.GetDeliveryAttempt() != back.GetDeliveryAttempt()+1 {
		res.fail("delivery attempt %d after %d", again.GetDeliveryAttempt(), back.GetDeliveryAttempt())
	}
	if !bytes.Equal(again.GetBody(), []byte("back")) {
		res.fail("body %q on redelivery", again.GetBody())
	}
	if err := c.Ack(ctxBg(), again); err != nil {
		res.fail("ack after redelivery: %v", err)
	}
	// Neither message comes back after its ack.
	extra := 0
	drainQuiet(c, 30*time.Second, 2, func(mv *rmq.MessageView) {
		extra++
		res.fail("delivered after its ack: %q attempt %d", mv.GetBody(), mv.GetDeliveryAttempt())
	})
	res.set("extra", extra)
	return nil
}

// caseFilter: -count messages each tagged "a", "b" and "c", and -count with
// no tag; a simple consumer subscribed with "a||b" gets exactly the a and b
// ones.
func caseFilter() error {
	p, err := startProducer([]string{*flagTopic})
	if err != nil {
		return err
	}
	tagOf := map[string]string{}
	for i := 0; i < *flagCount; i++ {
		for _, tag := range []string{"a", "b", "c", ""} {
			m := &rmq.Message{Topic: *flagTopic, Body: []byte(fmt.Sprintf("%s-%d", tag, i))}
			if tag != "" {
				m.SetTag(tag)
			}
			id, err := sendOne(p, m)
			if err != nil {
				res.fail("send %q %d: %v", tag, i, err)
				continue
			}
			tagOf[id] = tag
		}
	}
	stop(p)
	res.set("sent", len(tagOf))

	c, err := startSimple(*flagGroup, *flagTopic, rmq.NewFilterExpression("a||b"))
	if err != nil {
		return err
	}
	defer stop(c)
	byTag := map[string]int{}
	seen := map[string]bool{}
	dup := 0
	want := 2 * *flagCount
	handle := func(mv *rmq.MessageView) {
		id := mv.GetMessageId()
		if seen[id] {
			dup++
		} else {
			seen[id] = true
			tag, ok := tagOf[id]
			if !ok {
				tag = "unknown"
			}
			if deref(mv.GetTag()) != tag && !(tag == "" && mv.GetTag() == nil) {
				res.fail("message %s arrives with tag %s, sent with %q", id, deref(mv.GetTag()), tag)
			}
			byTag[tag]++
		}
		if err := c.Ack(ctxBg(), mv); err != nil {
			res.fail("ack: %v", err)
		}
	}
	receiveUntil(c, 20*time.Second, func() bool { return byTag["a"]+byTag["b"] >= want }, handle)
	drainQuiet(c, 20*time.Second, 2, handle)
	other := len(seen) - byTag["a"] - byTag["b"]
	res.set("received_a", byTag["a"])
	res.set("received_b", byTag["b"])
	res.set("received_other", other)
	res.set("duplicates", dup)
	if byTag["a"] != *flagCount || byTag["b"] != *flagCount || other != 0 {
		res.fail("filter a||b delivered %v", byTag)
	}
	return nil
}

// caseFifo: -producers producers each send -count messages to each of their
// -groups message groups (sequence numbers in a property), all at the same
// time; a push consumer of a FIFO group must see each group's messages in
// order, one at a time. With -fail-once-seq the first delivery of that
// sequence number fails in every group: the client retries it locally and
// the order must still hold.
func caseFifo() error {
	type groupState struct {
		next     int
		inflight int
		failed   bool
		seen     map[int]bool
	}
	var mu sync.Mutex
	state := map[string]*groupState{}
	var received, dup, outOfOrder, maxInflight, redelivered, badAttempt, noGroup int
	consume := func(mv *rmq.MessageView) rmq.ConsumerResult {
		g := deref(mv.GetMessageGroup())
		seq, err := strconv.Atoi(mv.GetProperties()["seq"])
		mu.Lock()
		if mv.GetMessageGroup() == nil || err != nil {
			noGroup++
			mu.Unlock()
			return rmq.SUCCESS
		}
		st := state[g]
		if st == nil {
			st = &groupState{seen: map[int]bool{}}
			state[g] = st
		}
		st.inflight++
		if st.inflight > maxInflight {
			maxInflight = st.inflight
		}
		fail := seq == *flagFailSeq && !st.failed
		switch {
		case fail:
			st.failed = true
		case st.seen[seq]:
			dup++
		default:
			if seq != st.next {
				outOfOrder++
				if outOfOrder <= 5 {
					res.fail("group %s: sequence %d arrived when %d was due", g, seq, st.next)
				}
			}
			if seq == *flagFailSeq {
				redelivered++
				if mv.GetDeliveryAttempt() != 2 {
					badAttempt++
				}
			}
			st.seen[seq] = true
			st.next = seq + 1
			received++
		}
		mu.Unlock()
		// Long enough for a second message of the group to overlap if the
		// client (or server) handed out two at once.
		time.Sleep(2 * time.Millisecond)
		mu.Lock()
		st.inflight--
		mu.Unlock()
		if fail {
			return rmq.FAILURE
		}
		return rmq.SUCCESS
	}
	c, err := startPush(*flagGroup, *flagTopic, rmq.SUB_ALL, 8, true, consume)
	if err != nil {
		return err
	}
	defer leavePush(c)

	var wg sync.WaitGroup
	var sent, sendErrors atomic.Int32
	t0 := time.Now()
	for pi := 0; pi < *flagProds; pi++ {
		wg.Add(1)
		go func(pi int) {
			defer wg.Done()
			p, err := startProducer([]string{*flagTopic})
			if err != nil {
				res.fail("producer %d: %v", pi, err)
				return
			}
			defer stop(p)
			for seq := 0; seq < *flagCount; seq++ {
				for g := 0; g < *flagGroups; g++ {
					m := &rmq.Message{Topic: *flagTopic, Body: []byte(fmt.Sprintf("p%d-g%d-%d", pi, g, seq))}
					m.SetMessageGroup(fmt.Sprintf("p%d-g%d", pi, g))
					m.AddProperty("seq", strconv.Itoa(seq))
					if _, err := sendOne(p, m); err != nil {
						sendErrors.Add(1)
						res.fail("producer %d send: %v", pi, err)
						continue
					}
					sent.Add(1)
				}
			}
		}(pi)
	}
	wg.Wait()
	res.set("send_s", time.Since(t0).Seconds())
	res.set("sent", int(sent.Load()))
	res.set("send_errors", int(sendErrors.Load()))
	want := int(sent.Load())
	for time.Now().Before(deadline) {
		mu.Lock()
		n := received
		mu.Unlock()
		if n >= want {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A short tail for late duplicates.
	time.Sleep(time.Second)
	mu.Lock()
	defer mu.Unlock()
	res.set("consumer", "push")
	res.set("received", received)
	res.set("duplicates", dup)
	res.set("out_of_order", outOfOrder)
	res.set("max_inflight_per_group", maxInflight)
	res.set("message_groups", len(state))
	res.set("retried_in_order", redelivered)
	res.set("retry_attempt_not_2", badAttempt)
	res.set("without_group", noGroup)
	if all := *flagProds * *flagGroups * *flagCount; received != all {
		res.fail("received %d of %d", received, all)
	}
	return nil
}

// caseDelay: -count messages due -delay-ms after sending; none may arrive
// before its time, each carries its delivery timestamp, and the lateness is
// reported.
func caseDelay() error {
	c, err := startSimple(*flagGroup, *flagTopic, rmq.SUB_ALL)
	if err != nil {
		return err
	}
	defer stop(c)
	p, err := startProducer([]string{*flagTopic})
	if err != nil {
		return err
	}
	var mu sync.Mutex
	due := map[string]time.Time{}
	var early, wrongTs int
	var maxLate, sumLate time.Duration
	seen := map[string]bool{}
	done := make(chan struct{})
	// The consumer runs while the producer sends: a message must not
	// arrive early even when someone is already waiting for it.
	go func() {
		defer close(done)
		receiveUntil(c, 20*time.Second, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(seen) >= *flagCount
		}, func(mv *rmq.MessageView) {
			now := time.Now()
			mu.Lock()
			defer mu.Unlock()
			id := mv.GetMessageId()
			at, ok := due[id]
			if !ok {
				// Sent but its receipt not yet recorded: cannot happen
				// unless the message arrived at once.
				early++
				res.fail("message %s arrived before its send returned", id)
				return
			}
			if seen[id] {
				res.fail("duplicate %s", id)
			}
			seen[id] = true
			dueMs := at.UnixMilli()
			if now.UnixMilli() < dueMs {
				early++
				res.fail("message %s arrived %d ms early", id, dueMs-now.UnixMilli())
			}
			if ts := mv.GetDeliveryTimestamp(); ts == nil || ts.UnixMilli() != dueMs {
				wrongTs++
			}
			late := now.Sub(at)
			sumLate += late
			if late > maxLate {
				maxLate = late
			}
			if err := c.Ack(ctxBg(), mv); err != nil {
				res.fail("ack: %v", err)
			}
		})
	}()
	for i := 0; i < *flagCount; i++ {
		at := time.Now().Add(time.Duration(*flagDelayMs) * time.Millisecond)
		m := &rmq.Message{Topic: *flagTopic, Body: []byte(fmt.Sprintf("delay-%d", i))}
		m.SetDelayTimestamp(at)
		mu.Lock() // the receiver must not see the message before `due` has it
		id, err := sendOne(p, m)
		if err == nil {
			due[id] = at
		}
		mu.Unlock()
		if err != nil {
			res.fail("send %d: %v", i, err)
		}
	}
	stop(p)
	<-done
	mu.Lock()
	defer mu.Unlock()
	res.set("sent", len(due))
	res.set("received", len(seen))
	res.set("early", early)
	res.set("wrong_timestamp", wrongTs)
	res.set("max_late_ms", maxLate.Milliseconds())
	if len(seen) > 0 {
		res.set("mean_late_ms", (sumLate / time.Duration(len(seen))).Milliseconds())
	}
	if len(seen) != *flagCount {
		res.fail("received %d of %d", len(seen), *flagCount)
	}
	return nil
}

// caseTransaction: -count transactions, the even ones committed and the odd
// ones rolled back, and -orphans left open; the producer's
// TransactionChecker commits the orphans when the server asks. The consumer
// must get the committed ones and the orphans, each once, and never a
// rolled-back one.
func caseTransaction() error {
	var mu sync.Mutex
	checks := map[string]int{} // body → checks
	unexpectedChecks := 0
	checker := &rmq.TransactionChecker{Check: func(mv *rmq.MessageView) rmq.TransactionResolution {
		mu.Lock()
		defer mu.Unlock()
		body := string(mv.GetBody())
		if strings.HasPrefix(body, "orphan-") {
			checks[body]++
			return rmq.COMMIT
		}
		unexpectedChecks++
		res.fail("check of a transaction that was already ended: %q", body)
		return rmq.UNKNOWN
	}}
	p, err := startProducer([]string{*flagTopic}, rmq.WithTransactionChecker(checker))
	if err != nil {
		return err
	}
	defer stop(p)
	expected := map[string]bool{} // body → should be delivered
	var committed, rolledBack, orphans int
	send := func(body string) (rmq.Transaction, error) {
		tx := p.BeginTransaction()
		m := &rmq.Message{Topic: *flagTopic, Body: []byte(body)}
		m.SetTag("tx")
		m.SetKeys(body)
		r, err := p.SendWithTransaction(ctxBg(), m, tx)
		if err == nil && (len(r) != 1 || r[0].TransactionId == "") {
			err = fmt.Errorf("expected one receipt with a transaction id")
		}
		return tx, err
	}
	for i := 0; i < *flagCount; i++ {
		body := fmt.Sprintf("tx-%d", i)
		tx, err := send(body)
		if err != nil {
			res.fail("send %s: %v", body, err)
			continue
		}
		if i%2 == 0 {
			if err := tx.Commit(); err != nil {
				res.fail("commit %s: %v", body, err)
				continue
			}
			committed++
			expected[body] = true
		} else {
			if err := tx.RollBack(); err != nil {
				res.fail("rollback %s: %v", body, err)
				continue
			}
			rolledBack++
			expected[body] = false
		}
	}
	for i := 0; i < *flagOrphans; i++ {
		body := fmt.Sprintf("orphan-%d", i)
		if _, err := send(body); err != nil {
			res.fail("send %s: %v", body, err)
			continue
		}
		orphans++
		expected[body] = true
	}
	res.set("committed", committed)
	res.set("rolled_back", rolledBack)
	res.set("orphans", orphans)
	want := committed + orphans

	c, err := startSimple(*flagGroup, *flagTopic, rmq.SUB_ALL)
	if err != nil {
		return err
	}
	defer stop(c)
	seen := map[string]bool{}
	var dup, unexpected int
	t0 := time.Now()
	handle := func(mv *rmq.MessageView) {
		body := string(mv.GetBody())
		switch {
		case seen[body]:
			dup++
		case !expected[body]:
			unexpected++
			res.fail("delivered but not committed: %q", body)
		}
		seen[body] = true
		if err := c.Ack(ctxBg(), mv); err != nil {
			res.fail("ack: %v", err)
		}
	}
	receiveUntil(c, 20*time.Second, func() bool { return len(seen) >= want }, handle)
	res.set("orphans_resolved_s", time.Since(t0).Seconds())
	drainQuiet(c, 20*time.Second, 2, handle)
	mu.Lock()
	defer mu.Unlock()
	orphanChecks := 0
	for _, n := range checks {
		orphanChecks += n
	}
	res.set("received", len(seen))
	res.set("duplicates", dup)
	res.set("unexpected", unexpected)
	res.set("orphan_checks", orphanChecks)
	res.set("orphans_checked", len(checks))
	res.set("unexpected_checks", unexpectedChecks)
	if len(seen) != want {
		res.fail("received %d of %d", len(seen), want)
	}
	return nil
}

// caseRetry: a push consumer fails every delivery of -count "doomed"
// messages and the first delivery of -count "flaky" ones. Flaky ones are
// redelivered (attempt 2) and succeed; doomed ones are delivered exactly
// -max-attempts times, then land in %DLQ%<group>, where a simple consumer
// of -dlq-group reads them.
func caseRetry() error {
	var mu sync.Mutex
	attempts := map[string][]int32{} // body → attempts seen, in order
	succeeded := map[string]bool{}
	consume := func(mv *rmq.MessageView) rmq.ConsumerResult {
		body := string(mv.GetBody())
		mu.Lock()
		defer mu.Unlock()
		attempts[body] = append(attempts[body], mv.GetDeliveryAttempt())
		if strings.HasPrefix(body, "flaky-") && mv.GetDeliveryAttempt() >= 2 {
			succeeded[body] = true
			return rmq.SUCCESS
		}
		return rmq.FAILURE
	}
	pc, err := startPush(*flagGroup, *flagTopic, rmq.SUB_ALL, 4, false, consume)
	if err != nil {
		return err
	}
	defer leavePush(pc)
	p, err := startProducer([]string{*flagTopic})
	if err != nil {
		return err
	}
	doomed := map[string]*rmq.Message{} // message id → message
	var flaky []string
	for i := 0; i < *flagCount; i++ {
		m := &rmq.Message{Topic: *flagTopic, Body: []byte(fmt.Sprintf("doomed-%d", i))}
		m.SetTag("doomed")
		m.SetKeys(fmt.Sprintf("doomed-key-%d", i))
		m.AddProperty("origin", "go-retry")
		id, err := sendOne(p, m)
		if err != nil {
			res.fail("send: %v", err)
			continue
		}
		doomed[id] = m
		body := fmt.Sprintf("flaky-%d", i)
		if _, err := sendOne(p, &rmq.Message{Topic: *flagTopic, Body: []byte(body)}); err != nil {
			res.fail("send: %v", err)
			continue
		}
		flaky = append(flaky, body)
	}
	stop(p)

	// The DLQ topic appears with the first message moved there; until then
	// the consumer's start fails (TOPIC_NOT_FOUND from QueryRoute).
	dlqTopic := "%DLQ%" + *flagGroup
	var dc rmq.SimpleConsumer
	startRetries := 0
	for dc == nil && time.Now().Before(deadline) {
		if dc, err = startSimple(*flagDlqGroup, dlqTopic, rmq.SUB_ALL); err != nil {
			startRetries++
			time.Sleep(500 * time.Millisecond)
		}
	}
	res.set("dlq_start_retries", startRetries)
	if dc == nil {
		return fmt.Errorf("no consumer of %s could start: %v", dlqTopic, err)
	}
	defer stop(dc)
	dlqSeen := map[string]int{}
	var dlqUnexpected, dlqMismatched int
	handle := func(mv *rmq.MessageView) {
		id := mv.GetMessageId()
		want, ok := doomed[id]
		switch {
		case !ok:
			dlqUnexpected++
			res.fail("unexpected DLQ message %s %q", id, mv.GetBody())
		case dlqSeen[id] == 0:
			if !bytes.Equal(mv.GetBody(), want.Body) || !reflect.DeepEqual(mv.GetKeys(), want.GetKeys()) ||
				deref(mv.GetTag()) != deref(want.GetTag()) || mv.GetProperties()["origin"] != "go-retry" {
				dlqMismatched++
				res.fail("DLQ message %s differs: body %q tag %s keys %q properties %q", id, mv.GetBody(),
					deref(mv.GetTag()), mv.GetKeys(), mv.GetProperties())
			}
		}
		dlqSeen[id]++
		if err := dc.Ack(ctxBg(), mv); err != nil {
			res.fail("DLQ ack: %v", err)
		}
	}
	receiveUntil(dc, 20*time.Second, func() bool { return len(dlqSeen) >= len(doomed) }, handle)
	// Flaky ones may still be finishing their second attempt.
	for time.Now().Before(deadline) {
		mu.Lock()
		n := len(succeeded)
		mu.Unlock()
		if n >= len(flaky) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	drainQuiet(dc, 20*time.Second, 1, handle)

	mu.Lock()
	defer mu.Unlock()
	maxAttempts := int32(*flagAttempts)
	var badSequence, overDelivered int
	minFinal, maxFinal := int32(1<<30), int32(0)
	for _, m := range doomed {
		seq := attempts[string(m.Body)]
		last := int32(0)
		if len(seq) > 0 {
			last = seq[len(seq)-1]
		}
		if last < minFinal {
			minFinal = last
		}
		if last > maxFinal {
			maxFinal = last
		}
		if int32(len(seq)) > maxAttempts {
			overDelivered++
		}
		for i, a := range seq {
			if a != int32(i+1) {
				badSequence++
				res.fail("%s: attempts %v", m.Body, seq)
				break
			}
		}
	}
	flakyOk := 0
	for _, b := range flaky {
		seq := attempts[b]
		if succeeded[b] && len(seq) == 2 && seq[0] == 1 && seq[1] == 2 {
			flakyOk++
		} else {
			res.fail("%s: attempts %v, succeeded %v", b, seq, succeeded[b])
		}
	}
	dlqDup := 0
	for _, n := range dlqSeen {
		dlqDup += n - 1
	}
	res.set("doomed", len(doomed))
	res.set("doomed_min_attempts", minFinal)
	res.set("doomed_max_attempts", maxFinal)
	res.set("doomed_bad_sequence", badSequence)
	res.set("doomed_over_delivered", overDelivered)
	res.set("flaky", len(flaky))
	res.set("flaky_ok", flakyOk)
	res.set("dlq_received", len(dlqSeen))
	res.set("dlq_duplicates", dlqDup)
	res.set("dlq_unexpected", dlqUnexpected)
	res.set("dlq_mismatched", dlqMismatched)
	if len(dlqSeen) != len(doomed) {
		res.fail("DLQ got %d of %d", len(dlqSeen), len(doomed))
	}
	if minFinal != maxAttempts || maxFinal != maxAttempts {
		res.fail("doomed messages ended after %d..%d attempts, want %d", minFinal, maxFinal, maxAttempts)
	}
	return nil
}

// caseLoad: -count messages sent by -producers producers at once while a
// consumer (-consumer simple: 4 receive loops on one simple consumer; push:
// a push consumer with 16 threads) takes them; every message must be
// consumed and acked, none lost; duplicates are counted.
func caseLoad() error {
	var mu sync.Mutex
	seen := map[string]int{}
	var bodyErrors, ackErrors int
	var received atomic.Int32
	record := func(mv *rmq.MessageView) {
		body := string(mv.GetBody())
		mu.Lock()
		defer mu.Unlock()
		if !strings.HasPrefix(body, "load-") {
			bodyErrors++
		}
		if seen[body] == 0 {
			received.Add(1)
		}
		seen[body]++
	}
	want := int32(*flagCount)
	var quit atomic.Bool // set after everything sent was seen and a tail passed
	var stopConsumer func()
	var consumerWg sync.WaitGroup
	switch *flagConsumer {
	case "simple":
		c, err := startSimple(*flagGroup, *flagTopic, rmq.SUB_ALL)
		if err != nil {
			return err
		}
		for w := 0; w < 4; w++ {
			consumerWg.Add(1)
			go func() {
				defer consumerWg.Done()
				receiveUntil(c, 30*time.Second, func() bool { return quit.Load() }, func(mv *rmq.MessageView) {
					record(mv)
					if err := c.Ack(ctxBg(), mv); err != nil {
						mu.Lock()
						ackErrors++
						mu.Unlock()
						res.fail("ack: %v", err)
					}
				})
			}()
		}
		stopConsumer = func() { consumerWg.Wait(); stop(c) }
	case "push":
		c, err := startPush(*flagGroup, *flagTopic, rmq.SUB_ALL, 16, false, func(mv *rmq.MessageView) rmq.ConsumerResult {
			record(mv)
			return rmq.SUCCESS
		})
		if err != nil {
			return err
		}
		stopConsumer = func() { leavePush(c) }
	default:
		return fmt.Errorf("-consumer must be simple or push, not %q", *flagConsumer)
	}
	res.set("consumer", *flagConsumer)

	t0 := time.Now()
	var next, sent, sendErrors atomic.Int32
	var wg sync.WaitGroup
	for pi := 0; pi < *flagProds; pi++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := startProducer([]string{*flagTopic})
			if err != nil {
				res.fail("producer: %v", err)
				return
			}
			defer stop(p)
			var inner sync.WaitGroup
			// Four senders per producer share its connection.
			for s := 0; s < 4; s++ {
				inner.Add(1)
				go func() {
					defer inner.Done()
					for {
						i := next.Add(1) - 1
						if i >= want {
							return
						}
						m := &rmq.Message{Topic: *flagTopic, Body: []byte(fmt.Sprintf("load-%d", i))}
						m.SetKeys(fmt.Sprintf("load-%d", i))
						if _, err := sendOne(p, m); err != nil {
							sendErrors.Add(1)
							res.fail("send %d: %v", i, err)
							continue
						}
						sent.Add(1)
					}
				}()
			}
			inner.Wait()
		}()
	}
	wg.Wait()
	sendS := time.Since(t0).Seconds()
	for received.Load() < sent.Load() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	consumeS := time.Since(t0).Seconds()
	// A tail for duplicates (redeliveries of messages whose ack was lost).
	time.Sleep(2 * time.Second)
	quit.Store(true)
	stopConsumer()

	mu.Lock()
	defer mu.Unlock()
	dup := 0
	for _, n := range seen {
		dup += n - 1
	}
	missing := int(sent.Load()) - len(seen)
	res.set("sent", int(sent.Load()))
	res.set("send_errors", int(sendErrors.Load()))
	res.set("received", len(seen))
	res.set("duplicates", dup)
	res.set("missing", missing)
	res.set("body_errors", bodyErrors)
	res.set("ack_errors", ackErrors)
	res.set("send_s", sendS)
	res.set("all_consumed_s", consumeS)
	if missing != 0 || int(sent.Load()) != *flagCount {
		res.fail("sent %d of %d, %d never consumed", sent.Load(), *flagCount, missing)
	}
	return nil
}
