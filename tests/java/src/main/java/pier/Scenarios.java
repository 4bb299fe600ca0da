package pier;

import java.io.Closeable;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.BiConsumer;
import java.util.function.BooleanSupplier;
import java.util.function.Consumer;
import java.util.function.Function;
import org.apache.rocketmq.client.apis.ClientConfiguration;
import org.apache.rocketmq.client.apis.ClientException;
import org.apache.rocketmq.client.apis.ClientServiceProvider;
import org.apache.rocketmq.client.apis.consumer.ConsumeResult;
import org.apache.rocketmq.client.apis.consumer.FilterExpression;
import org.apache.rocketmq.client.apis.consumer.FilterExpressionType;
import org.apache.rocketmq.client.apis.consumer.MessageListener;
import org.apache.rocketmq.client.apis.consumer.PushConsumer;
import org.apache.rocketmq.client.apis.consumer.SimpleConsumer;
import org.apache.rocketmq.client.apis.message.MessageBuilder;
import org.apache.rocketmq.client.apis.message.MessageView;
import org.apache.rocketmq.client.apis.producer.Producer;
import org.apache.rocketmq.client.apis.producer.SendReceipt;
import org.apache.rocketmq.client.apis.producer.Transaction;
import org.apache.rocketmq.client.apis.producer.TransactionChecker;
import org.apache.rocketmq.client.apis.producer.TransactionResolution;

/**
 * Scenarios of the official RocketMQ 5 Java client (rocketmq-client-java) against Pier,
 * one per run, each printing one JSON summary line on stdout:
 *
 * <pre>
 *   java -cp CLASSPATH pier.Scenarios --case NAME --endpoints "127.0.0.1:A[;127.0.0.1:B]"
 *        --topic T --group G [--count N] [--timeout SECONDS] [case options]
 * </pre>
 *
 * Cases: normal, async, invisible, filter, fifo, delay, transaction, retry, push-load.
 * Topics and groups must exist (tests/tests/e2e/official_java.rs creates them).
 *
 * <p>Exit status: 0 the case passed its own checks, 1 a check failed, 2 an error (bad
 * usage, a client call threw), 3 the hard time limit (--timeout) was hit.
 *
 * <p>With several addresses ("a;b") the client opens one gRPC channel over all of them:
 * its name resolver shuffles the list and grpc-java's default pick_first policy then
 * sends every call of that channel to the first address that connects. So each client
 * (producer, consumer) talks to one proxy picked at random, and in cluster mode
 * messages often cross from one proxy to the other through the shared store.
 */
public final class Scenarios {
    private static final ClientServiceProvider PROVIDER = ClientServiceProvider.loadService();

    private final Args args;
    private final Summary s = new Summary();
    private final long started = System.nanoTime();
    private final AtomicBoolean printed = new AtomicBoolean();
    private final String topic;
    private final String group;
    /** When waiting loops give up, leaving time to print a summary before the hard limit. */
    private final long deadline;

    private Scenarios(Args args) {
        this.args = args;
        this.topic = args.str("topic");
        this.group = args.str("group");
        long timeoutMs = args.num("timeout", 120) * 1000L;
        this.deadline = started + TimeUnit.MILLISECONDS.toNanos(Math.max(1000, timeoutMs - 5000));
    }

    public static void main(String[] argv) {
        Scenarios sc;
        try {
            Args args = Args.parse(argv);
            args.str("case");
            args.str("endpoints");
            sc = new Scenarios(args);
        } catch (IllegalArgumentException e) {
            System.err.println("error: " + e.getMessage());
            Runtime.getRuntime().halt(2);
            return;
        }
        sc.run();
    }

    private void run() {
        String name = args.str("case");
        s.put("case", name);
        s.put("ok", false);
        startHardLimit(args.num("timeout", 120));
        int code;
        try {
            boolean ok = switch (name) {
                case "normal" -> normal();
                case "async" -> async();
                case "invisible" -> invisible();
                case "filter" -> filter();
                case "fifo" -> fifo();
                case "delay" -> delay();
                case "transaction" -> transaction();
                case "retry" -> retry();
                case "push-load" -> pushLoad();
                default -> throw new IllegalArgumentException("unknown --case " + name);
            };
            s.put("ok", ok);
            code = ok ? 0 : 1;
        } catch (Throwable t) {
            t.printStackTrace();
            s.error(t.toString());
            code = 2;
        }
        finish(code);
    }

    /** Prints the summary once and exits at once (client threads must not keep the JVM up). */
    private void finish(int code) {
        if (!printed.compareAndSet(false, true)) {
            return;
        }
        s.put("secs", secsSince(started));
        System.out.println(s.json());
        System.out.flush();
        System.err.flush();
        Runtime.getRuntime().halt(code);
    }

    private void startHardLimit(long seconds) {
        Thread t = new Thread(() -> {
            try {
                Thread.sleep(seconds * 1000L);
            } catch (InterruptedException e) {
                return;
            }
            s.put("ok", false);
            s.error("hard time limit of " + seconds + "s hit");
            finish(3);
        }, "hard-limit");
        t.setDaemon(true);
        t.start();
    }

    // ---------------------------------------------------------------- client builders

    private ClientConfiguration config() {
        return ClientConfiguration.newBuilder()
            .setEndpoints(args.str("endpoints"))
            // TLS is the client's default; the tests turn it off unless
            // `--tls true` (Pier serves both on one port when it has a
            // certificate; the client trusts any certificate).
            .enableSsl("true".equals(args.m().get("tls")))
            // The default (3 s) is for a production server; tests run a debug
            // build beside other tests on 2 cores, and a timed-out send is resent
            // by the client, which stores the message twice and shows up here as a
            // duplicate that is no fault of the server.
            .setRequestTimeout(Duration.ofMillis(args.num("request-timeout-ms", 10_000)))
            .build();
    }

    private Producer producer(String... topics) throws ClientException {
        return PROVIDER.newProducerBuilder()
            .setClientConfiguration(config())
            .setTopics(topics)
            .build();
    }

    private SimpleConsumer simple(String group, String topic, FilterExpression filter)
            throws ClientException {
        return PROVIDER.newSimpleConsumerBuilder()
            .setClientConfiguration(config())
            .setConsumerGroup(group)
            .setSubscriptionExpressions(Map.of(topic, filter))
            // Short long polls keep the "nothing else arrives" tails short.
            .setAwaitDuration(Duration.ofSeconds(2))
            .build();
    }

    private PushConsumer push(String group, String topic, int threads, MessageListener listener)
            throws ClientException {
        return PROVIDER.newPushConsumerBuilder()
            .setClientConfiguration(config())
            .setConsumerGroup(group)
            .setSubscriptionExpressions(Map.of(topic, FilterExpression.SUB_ALL))
            .setConsumptionThreadCount(threads)
            .setMessageListener(listener)
            .build();
    }

    private MessageBuilder message(String topic, String body) {
        return PROVIDER.newMessageBuilder()
            .setTopic(topic)
            .setBody(body.getBytes(StandardCharsets.UTF_8));
    }

    // ---------------------------------------------------------------- small helpers

    /** One receive; a failure is counted and logged, and gives no messages. */
    private List<MessageView> receive(SimpleConsumer c, int max, Duration invisible) {
        try {
            return c.receive(max, invisible);
        } catch (ClientException e) {
            s.inc("receive_errors");
            s.error("receive: " + e);
            System.err.println("receive failed: " + e);
            sleep(200);
            return List.of();
        }
    }

    private boolean ack(SimpleConsumer c, MessageView mv) {
        try {
            c.ack(mv);
            return true;
        } catch (ClientException e) {
            s.inc("ack_errors");
            s.error("ack: " + e);
            System.err.println("ack failed: " + e);
            return false;
        }
    }

    /**
     * Keeps receiving from {@code c} for {@code ms}: every message arriving then is
     * unexpected (everything that should come has come). Acks what it gets.
     */
    /**
     * Receives (16 at a time, each acked) until every key of {@code want} arrived or the
     * deadline passed; {@code keyOf} gives a delivery's key. A delivery whose key is not
     * wanted counts as {@code <prefix>unexpected} and goes to {@code onUnexpected}, one
     * whose key arrived before as {@code <prefix>duplicates}; {@code onFirst} checks each
     * first delivery of a wanted key. Returns the keys that arrived.
     */
    private Set<String> receiveWanted(SimpleConsumer c, Set<String> want,
            Function<MessageView, String> keyOf, String prefix,
            Consumer<MessageView> onUnexpected, BiConsumer<MessageView, String> onFirst) {
        Set<String> seen = new HashSet<>();
        while (seen.size() < want.size() && beforeDeadline()) {
            for (MessageView mv : receive(c, 16, Duration.ofSeconds(30))) {
                String key = keyOf.apply(mv);
                if (!want.contains(key)) {
                    s.inc(prefix + "unexpected");
                    onUnexpected.accept(mv);
                } else if (!seen.add(key)) {
                    s.inc(prefix + "duplicates");
                } else {
                    onFirst.accept(mv, key);
                }
                ack(c, mv);
            }
        }
        return seen;
    }

    private static String idOf(MessageView mv) {
        return mv.getMessageId().toString();
    }

    private int tail(SimpleConsumer c, long ms) {
        long end = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(ms);
        int extra = 0;
        while (System.nanoTime() < end) {
            for (MessageView mv : receive(c, 16, Duration.ofSeconds(30))) {
                extra++;
                System.err.println("tail: unexpected " + describe(mv));
                ack(c, mv);
            }
        }
        return extra;
    }

    /** Waits until {@code done} or the soft deadline; returns whether done. */
    private boolean await(BooleanSupplier done) {
        while (!done.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                return false;
            }
            sleep(20);
        }
        return true;
    }

    private boolean beforeDeadline() {
        return System.nanoTime() < deadline;
    }

    private static String prop(MessageView mv, String key) {
        return mv.getProperties().get(key);
    }

    private static byte[] bytes(ByteBuffer b) {
        ByteBuffer d = b.duplicate();
        byte[] out = new byte[d.remaining()];
        d.get(out);
        return out;
    }

    private static String text(MessageView mv) {
        return new String(bytes(mv.getBody()), StandardCharsets.UTF_8);
    }

    private static String describe(MessageView mv) {
        return "id=" + mv.getMessageId() + " tag=" + mv.getTag().orElse(null) + " attempt="
            + mv.getDeliveryAttempt() + " props=" + mv.getProperties();
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static double secsSince(long nanos) {
        return Math.round((System.nanoTime() - nanos) / 1e6) / 1000.0;
    }

    private static long msSince(long nanos) {
        return TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - nanos);
    }

    private static void closeQuietly(Closeable c) {
        if (c == null) return;
        try {
            c.close();
        } catch (Exception e) {
            System.err.println("close failed: " + e);
        }
    }

    // ---------------------------------------------------------------- normal

    /** What a message of the normal case was sent with. */
    private record Sent(int idx, String tag, Set<String> keys, Map<String, String> props,
                        byte[] body, long sentAtMs) {
        /** The first difference between this and what arrived, or null. */
        String diff(MessageView mv, String topic) {
            if (!topic.equals(mv.getTopic())) return "topic " + mv.getTopic();
            if (!Objects.equals(tag, mv.getTag().orElse(null))) return "tag " + mv.getTag();
            if (!keys.equals(new HashSet<>(mv.getKeys()))) return "keys " + mv.getKeys();
            if (!props.equals(mv.getProperties())) return "properties " + mv.getProperties();
            if (!Arrays.equals(body, bytes(mv.getBody()))) return "body of " + idx;
            if (mv.getDeliveryAttempt() != 1) return "delivery attempt " + mv.getDeliveryAttempt();
            if (mv.getMessageGroup().isPresent()) return "message group " + mv.getMessageGroup();
            if (mv.getDeliveryTimestamp().isPresent()) {
                return "delivery timestamp " + mv.getDeliveryTimestamp();
            }
            if (mv.getBornHost() == null || mv.getBornHost().isEmpty()) return "empty born host";
            long born = mv.getBornTimestamp();
            if (born < sentAtMs - 60_000 || born > System.currentTimeMillis() + 1000) {
                return "born timestamp " + born + " vs sent at " + sentAtMs;
            }
            return null;
        }
    }

    /**
     * Sync sends with a tag, two keys and user properties (unicode, spaces, '=' and ';'
     * in values) and a binary body, then a SimpleConsumer receives and acks: every
     * message arrives once with everything intact and delivery attempt 1.
     */
    private boolean normal() throws Exception {
        int n = args.num("count", 50);
        Map<String, Sent> sent = new HashMap<>();
        try (Producer p = producer(topic)) {
            for (int i = 0; i < n; i++) {
                String tag = "tag-" + (i % 3);
                Set<String> keys = Set.of("key-" + i, "order-" + (i % 7));
                Map<String, String> props = new HashMap<>();
                props.put("idx", Integer.toString(i));
                props.put("utf8", "grüße ✓ 消息 " + i);
                props.put("with space", "a b=c;d,e");
                byte[] body = new byte[256 + i];
                for (int j = 0; j < body.length; j++) {
                    body[j] = (byte) (j * 31 + i);
                }
                MessageBuilder b = PROVIDER.newMessageBuilder().setTopic(topic).setTag(tag)
                    .setKeys(keys.toArray(new String[0])).setBody(body);
                props.forEach(b::addProperty);
                long at = System.currentTimeMillis();
                SendReceipt r = p.send(b.build());
                sent.put(r.getMessageId().toString(), new Sent(i, tag, keys, props, body, at));
                s.inc("sent");
            }
        }
        s.put("distinct_receipt_ids", sent.size());
        Set<String> seen;
        try (SimpleConsumer c = simple(group, topic, FilterExpression.SUB_ALL)) {
            seen = receiveWanted(c, sent.keySet(), Scenarios::idOf, "", mv -> { }, (mv, id) -> {
                String d = sent.get(id).diff(mv, topic);
                if (d != null) {
                    s.inc("mismatched");
                    s.putIfAbsent("first_mismatch", d);
                }
            });
            s.add("unexpected", tail(c, 2000));
        }
        s.put("received", seen.size());
        s.put("missing", sent.size() - seen.size());
        return s.num("sent") == n && sent.size() == n && seen.size() == n && s.zero("duplicates",
            "unexpected", "mismatched", "ack_errors", "receive_errors");
    }

    // ---------------------------------------------------------------- async

    /**
     * sendAsync of all messages at once, then receiveAsync and ackAsync: every future
     * completes, receipt ids are distinct, and each message arrives once.
     */
    private boolean async() throws Exception {
        int n = args.num("count", 200);
        Map<String, Integer> ids = new ConcurrentHashMap<>();
        try (Producer p = producer(topic)) {
            List<CompletableFuture<SendReceipt>> fs = new ArrayList<>();
            long t = System.nanoTime();
            for (int i = 0; i < n; i++) {
                fs.add(p.sendAsync(message(topic, "async-" + i).setTag("async").build()));
            }
            for (int i = 0; i < n; i++) {
                try {
                    SendReceipt r = fs.get(i).get(Math.max(1, deadline - System.nanoTime()),
                        TimeUnit.NANOSECONDS);
                    if (ids.put(r.getMessageId().toString(), i) != null) {
                        s.inc("duplicate_receipt_ids");
                    }
                    s.inc("sent");
                } catch (Exception e) {
                    s.inc("send_errors");
                    s.error("sendAsync: " + e);
                }
            }
            s.put("send_secs", secsSince(t));
        }
        Set<String> seen = ConcurrentHashMap.newKeySet();
        try (SimpleConsumer c = simple(group, topic, FilterExpression.SUB_ALL)) {
            while (seen.size() < ids.size() && beforeDeadline()) {
                List<MessageView> got;
                try {
                    got = c.receiveAsync(32, Duration.ofSeconds(30)).get(30, TimeUnit.SECONDS);
                } catch (Exception e) {
                    s.inc("receive_errors");
                    s.error("receiveAsync: " + e);
                    continue;
                }
                List<CompletableFuture<Void>> acks = new ArrayList<>();
                for (MessageView mv : got) {
                    Integer i = ids.get(mv.getMessageId().toString());
                    if (i == null || !text(mv).equals("async-" + i)) {
                        s.inc("unexpected");
                    } else if (!seen.add(mv.getMessageId().toString())) {
                        s.inc("duplicates");
                    }
                    acks.add(c.ackAsync(mv));
                }
                for (CompletableFuture<Void> a : acks) {
                    try {
                        a.get(30, TimeUnit.SECONDS);
                    } catch (Exception e) {
                        s.inc("ack_errors");
                        s.error("ackAsync: " + e);
                    }
                }
            }
            s.add("unexpected", tail(c, 2000));
        }
        s.put("received", seen.size());
        s.put("missing", n - seen.size());
        return s.num("sent") == n && ids.size() == n && seen.size() == n && s.zero("send_errors",
            "duplicate_receipt_ids", "duplicates", "unexpected", "ack_errors", "receive_errors");
    }

    // ---------------------------------------------------------------- invisible

    /**
     * ChangeInvisibleDuration from a SimpleConsumer. Three messages are received with a
     * 30 s invisible time, then: A is shortened to 2 s, B is changed twice (3 s, then
     * 5 s: the second change uses the handle the first returned), C is changed to 30 s
     * and acked with the new handle. A and B must come back with delivery attempt 2, no
     * earlier than their new durations; C never comes back.
     */
    private boolean invisible() throws Exception {
        long shortMs = args.num("short-ms", 2000);
        long longMs = args.num("long-ms", 5000);
        Set<String> roles = Set.of("A", "B", "C");
        try (Producer p = producer(topic)) {
            for (String role : roles) {
                p.send(message(topic, "invisible-" + role).addProperty("role", role).build());
                s.inc("sent");
            }
        }
        Map<String, MessageView> first = new HashMap<>();
        try (SimpleConsumer c = simple(group, topic, FilterExpression.SUB_ALL)) {
            while (first.size() < 3 && beforeDeadline()) {
                for (MessageView mv : receive(c, 3, Duration.ofSeconds(30))) {
                    String role = prop(mv, "role");
                    if (role == null || !roles.contains(role) || first.containsKey(role)) {
                        s.inc("unexpected");
                        continue;
                    }
                    if (mv.getDeliveryAttempt() != 1) s.inc("wrong_attempt");
                    first.put(role, mv);
                }
            }
            if (first.size() < 3) {
                s.error("only " + first.keySet() + " of A, B, C arrived");
                return false;
            }
            long aChanged = System.nanoTime();
            c.changeInvisibleDuration(first.get("A"), Duration.ofMillis(shortMs));
            c.changeInvisibleDuration(first.get("B"), Duration.ofMillis(3000));
            long bChanged = System.nanoTime();
            c.changeInvisibleDuration(first.get("B"), Duration.ofMillis(longMs));
            c.changeInvisibleDuration(first.get("C"), Duration.ofSeconds(30));
            s.put("c_acked", ack(c, first.get("C")));

            Map<String, Long> backMs = new HashMap<>();
            while (backMs.size() < 2 && beforeDeadline()) {
                for (MessageView mv : receive(c, 3, Duration.ofSeconds(30))) {
                    String role = prop(mv, "role");
                    long since = msSince("A".equals(role) ? aChanged : bChanged);
                    if (("A".equals(role) || "B".equals(role)) && !backMs.containsKey(role)) {
                        backMs.put(role, since);
                        s.put(role.toLowerCase() + "_back_ms", since);
                        s.put(role.toLowerCase() + "_attempt", mv.getDeliveryAttempt());
                    } else {
                        s.inc("unexpected");
                        System.err.println("unexpected " + describe(mv));
                    }
                    ack(c, mv);
                }
            }
            s.add("unexpected", tail(c, 2000));
        }
        long a = s.num("a_back_ms");
        long b = s.num("b_back_ms");
        return a >= shortMs && b >= longMs && s.num("a_attempt") == 2 && s.num("b_attempt") == 2
            && Boolean.TRUE.equals(s.get("c_acked"))
            && s.zero("unexpected", "wrong_attempt", "ack_errors", "receive_errors");
    }

    // ---------------------------------------------------------------- filter

    /**
     * Tag filters: the group (--group) subscribes with "a||b", the second group
     * (--group2) with "c". Messages tagged a, b, c, ab, A and untagged are sent; each
     * group gets exactly the tags its expression names.
     */
    private boolean filter() throws Exception {
        int n = args.num("count", 10);
        String group2 = args.str("group2");
        List<String> tags = Arrays.asList("a", "b", "c", "ab", "A", null);
        try (Producer p = producer(topic)) {
            for (int i = 0; i < n; i++) {
                for (String tag : tags) {
                    MessageBuilder b = message(topic, "filter-" + tag + "-" + i)
                        .addProperty("tag", String.valueOf(tag));
                    if (tag != null) b.setTag(tag);
                    p.send(b.build());
                    s.inc("sent");
                }
            }
        }
        Map<String, Integer> ab = consumeTags(group, new FilterExpression("a||b",
            FilterExpressionType.TAG), 2 * n);
        Map<String, Integer> c = consumeTags(group2, new FilterExpression("c",
            FilterExpressionType.TAG), n);
        s.put("a_or_b", ab);
        s.put("c_only", c);
        return ab.equals(Map.of("a", n, "b", n)) && c.equals(Map.of("c", n))
            && s.zero("ack_errors", "receive_errors", "tag_mismatch");
    }

    /** Receives {@code expect} messages (then a tail) and counts them by tag. */
    private Map<String, Integer> consumeTags(String g, FilterExpression f, int expect)
            throws Exception {
        Map<String, Integer> byTag = new java.util.TreeMap<>();
        int got = 0;
        try (SimpleConsumer c = simple(g, topic, f)) {
            // Until everything expected came, then a tail in which nothing may come.
            long tailEnd = Long.MAX_VALUE;
            while (beforeDeadline() && System.nanoTime() < tailEnd) {
                for (MessageView mv : receive(c, 16, Duration.ofSeconds(30))) {
                    String tag = mv.getTag().orElse("null");
                    if (!tag.equals(prop(mv, "tag"))) s.inc("tag_mismatch");
                    byTag.merge(tag, 1, Integer::sum);
                    got++;
                    ack(c, mv);
                }
                if (got >= expect && tailEnd == Long.MAX_VALUE) {
                    tailEnd = System.nanoTime() + TimeUnit.SECONDS.toNanos(2);
                }
            }
        }
        return byTag;
    }

    // ---------------------------------------------------------------- fifo

    /**
     * FIFO: --producers producers (each its own Producer) send --count messages to each
     * of --groups message groups, sequentially; a PushConsumer of a FIFO group must see
     * every (message group, producer) sequence in order and never two messages of one
     * message group at the same time.
     */
    private boolean fifo() throws Exception {
        int producers = args.num("producers", 3);
        int groups = args.num("groups", 4);
        int n = args.num("count", 10);
        int total = producers * groups * n;
        Map<String, Integer> next = new HashMap<>();
        Map<String, AtomicInteger> inflight = new ConcurrentHashMap<>();
        AtomicInteger maxInflight = new AtomicInteger();
        Set<String> distinct = ConcurrentHashMap.newKeySet();
        MessageListener listener = mv -> {
            String mg = mv.getMessageGroup().orElse("");
            int now = inflight.computeIfAbsent(mg, k -> new AtomicInteger()).incrementAndGet();
            maxInflight.accumulateAndGet(now, Math::max);
            try {
                String[] parts = text(mv).split(":");
                if (parts.length != 3 || !mg.equals(parts[1])) {
                    s.inc("wrong_group");
                    return ConsumeResult.SUCCESS;
                }
                String key = parts[0] + ":" + parts[1];
                int seq = Integer.parseInt(parts[2]);
                synchronized (next) {
                    int want = next.getOrDefault(key, 0);
                    if (seq == want) {
                        next.put(key, want + 1);
                    } else if (seq < want) {
                        s.inc("duplicates");
                    } else {
                        s.inc("out_of_order");
                        System.err.println("out of order: " + key + " got " + seq + " want " + want);
                        next.put(key, seq + 1);
                    }
                }
                distinct.add(text(mv));
                s.inc("deliveries");
                // Stay a moment so a second message of the group, if wrongly handed
                // out in parallel, overlaps this one.
                sleep(2);
                return ConsumeResult.SUCCESS;
            } finally {
                inflight.get(mg).decrementAndGet();
            }
        };
        try (PushConsumer c = push(group, topic, 8, listener)) {
            List<Thread> threads = new ArrayList<>();
            for (int pi = 0; pi < producers; pi++) {
                String pname = "p" + pi;
                Thread t = new Thread(() -> {
                    try (Producer p = producer(topic)) {
                        for (int seq = 0; seq < n; seq++) {
                            for (int g = 0; g < groups; g++) {
                                String mg = "g" + g;
                                p.send(message(topic, pname + ":" + mg + ":" + seq)
                                    .setMessageGroup(mg).setTag("fifo").build());
                                s.inc("sent");
                            }
                        }
                    } catch (Exception e) {
                        s.inc("send_errors");
                        s.error("fifo producer " + pname + ": " + e);
                        e.printStackTrace();
                    }
                }, "producer-" + pname);
                t.start();
                threads.add(t);
            }
            for (Thread t : threads) {
                t.join();
            }
            await(() -> distinct.size() >= total);
            sleep(2000);
        }
        s.put("received", distinct.size());
        s.put("max_inflight_per_group", maxInflight.get());
        return s.num("sent") == total && distinct.size() == total && maxInflight.get() == 1
            && s.zero("send_errors", "out_of_order", "duplicates", "wrong_group");
    }

    // ---------------------------------------------------------------- delay

    /**
     * Delay messages: each is sent with a delivery timestamp --delay-ms (plus 100 ms per
     * index) ahead; it must not arrive before it, must carry it, and the lateness is
     * reported (max_late_ms).
     */
    private boolean delay() throws Exception {
        int n = args.num("count", 10);
        long delayMs = args.num("delay-ms", 3000);
        Map<String, Long> due = new HashMap<>();
        try (SimpleConsumer c = simple(group, topic, FilterExpression.SUB_ALL)) {
            try (Producer p = producer(topic)) {
                for (int i = 0; i < n; i++) {
                    long at = System.currentTimeMillis() + delayMs + 100L * i;
                    String body = "delay-" + i;
                    p.send(message(topic, body).setDeliveryTimestamp(at).build());
                    due.put(body, at);
                    s.inc("sent");
                }
            }
            AtomicLong maxLate = new AtomicLong();
            Set<String> seen = receiveWanted(c, due.keySet(), Scenarios::text, "", mv -> { }, (mv, body) -> {
                long now = System.currentTimeMillis();
                long at = due.get(body);
                if (now < at) {
                    s.inc("early");
                    System.err.println(body + " arrived " + (at - now) + " ms early");
                }
                maxLate.accumulateAndGet(now - at, Math::max);
                if (!mv.getDeliveryTimestamp().equals(java.util.Optional.of(at))) {
                    s.inc("wrong_timestamp");
                }
            });
            s.put("received", seen.size());
            s.put("max_late_ms", maxLate.get());
            s.add("unexpected", tail(c, 2000));
        }
        return s.num("received") == n && s.zero("early", "wrong_timestamp", "duplicates",
            "unexpected", "ack_errors", "receive_errors");
    }

    // ---------------------------------------------------------------- transaction

    /**
     * Transactions: --count half messages, half committed and half rolled back, plus
     * --orphans left open (neither committed nor rolled back). The server asks the
     * producer's TransactionChecker about the orphans, which commits them. Only the
     * committed and the orphans are delivered, each once, the orphans only after their
     * check.
     */
    private boolean transaction() throws Exception {
        int n = args.num("count", 10);
        int orphans = args.num("orphans", 2);
        Map<String, Long> checkedAt = new ConcurrentHashMap<>();
        TransactionChecker checker = mv -> {
            String kind = prop(mv, "kind");
            if ("orphan".equals(kind)) {
                s.inc("orphan_checks");
                checkedAt.putIfAbsent(text(mv), System.nanoTime());
                return TransactionResolution.COMMIT;
            }
            // Committed and rolled back ones were ended by the producer already.
            s.inc("unexpected_checks");
            System.err.println("unexpected check of " + describe(mv));
            return "commit".equals(kind) ? TransactionResolution.COMMIT
                : TransactionResolution.ROLLBACK;
        };
        Set<String> want = new HashSet<>();
        Producer p = PROVIDER.newProducerBuilder()
            .setClientConfiguration(config())
            .setTopics(topic)
            .setTransactionChecker(checker)
            .build();
        try {
            for (int i = 0; i < n; i++) {
                boolean commit = i % 2 == 0;
                String body = (commit ? "commit-" : "rollback-") + i;
                Transaction tx = p.beginTransaction();
                p.send(message(topic, body).addProperty("kind", commit ? "commit" : "rollback")
                    .build(), tx);
                if (commit) {
                    tx.commit();
                    s.inc("committed");
                    want.add(body);
                } else {
                    tx.rollback();
                    s.inc("rolled_back");
                }
            }
            long orphansSent = System.nanoTime();
            for (int i = 0; i < orphans; i++) {
                String body = "orphan-" + i;
                // Begun and sent, then left: only the server's check can end it.
                p.send(message(topic, body).addProperty("kind", "orphan").build(),
                    p.beginTransaction());
                want.add(body);
                s.inc("orphans_sent");
            }
            Set<String> seen;
            try (SimpleConsumer c = simple(group, topic, FilterExpression.SUB_ALL)) {
                seen = receiveWanted(c, want, Scenarios::text, "",
                    mv -> System.err.println("unexpected " + text(mv)), (mv, body) -> {
                        if (body.startsWith("orphan-")) {
                            if (!checkedAt.containsKey(body)) s.inc("orphan_before_check");
                            s.max("orphan_delivered_ms", msSince(orphansSent));
                        }
                    });
                s.add("unexpected", tail(c, 2000));
            }
            s.put("received", seen.size());
        } finally {
            closeQuietly(p);
        }
        return s.num("received") == n / 2 + (n % 2) + orphans
            && s.num("orphan_checks") >= orphans
            && s.zero("unexpected", "duplicates", "unexpected_checks", "orphan_before_check",
                "ack_errors", "receive_errors");
    }

    // ---------------------------------------------------------------- retry and DLQ

    /**
     * Retries: a PushConsumer fails "twice" messages on attempts 1 and 2, "always"
     * messages on every attempt, and takes "ok" messages at once. With the group's
     * max attempts at --max-attempts (3), a "twice" message is delivered exactly 3
     * times and then acked, an "always" one exactly 3 times and then lands in
     * %DLQ%group, read here by a SimpleConsumer of --dlq-group. Gaps between attempts
     * follow the group's backoff (--backoff-ms, comma separated, as the server
     * announced): no shorter, and at most --gap-slack-ms longer.
     */
    private boolean retry() throws Exception {
        int n = args.num("count", 3);
        int max = args.num("max-attempts", 3);
        String dlqGroup = args.str("dlq-group");
        long[] backoff = Arrays.stream(args.str("backoff-ms").split(","))
            .mapToLong(Long::parseLong).toArray();
        Map<String, List<Integer>> attempts = new ConcurrentHashMap<>();
        Map<String, Long> lastEnd = new ConcurrentHashMap<>();
        Map<Integer, AtomicLong> minGap = new ConcurrentHashMap<>();
        Map<Integer, AtomicLong> maxGap = new ConcurrentHashMap<>();
        Map<String, Boolean> succeeded = new ConcurrentHashMap<>();
        MessageListener listener = mv -> {
            String body = text(mv);
            int attempt = mv.getDeliveryAttempt();
            Long prev = lastEnd.get(body);
            if (prev != null) {
                long gap = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - prev);
                minGap.computeIfAbsent(attempt - 1, k -> new AtomicLong(Long.MAX_VALUE))
                    .accumulateAndGet(gap, Math::min);
                maxGap.computeIfAbsent(attempt - 1, k -> new AtomicLong())
                    .accumulateAndGet(gap, Math::max);
            }
            attempts.computeIfAbsent(body, k -> Collections.synchronizedList(new ArrayList<>()))
                .add(attempt);
            String kind = prop(mv, "kind");
            ConsumeResult r = "ok".equals(kind) || ("twice".equals(kind) && attempt > 2)
                ? ConsumeResult.SUCCESS : ConsumeResult.FAILURE;
            if (r == ConsumeResult.SUCCESS) succeeded.put(body, true);
            lastEnd.put(body, System.nanoTime());
            return r;
        };
        Map<String, String> dlqWant = new HashMap<>();
        try (PushConsumer c = push(group, topic, 4, listener)) {
            try (Producer p = producer(topic)) {
                for (String kind : List.of("ok", "twice", "always")) {
                    for (int i = 0; i < n; i++) {
                        String body = kind + "-" + i;
                        SendReceipt r = p.send(message(topic, body).addProperty("kind", kind)
                            .setKeys(body).build());
                        if (kind.equals("always")) dlqWant.put(r.getMessageId().toString(), body);
                        s.inc("sent");
                    }
                }
            }
            // Every "always" message has failed its last attempt, every other succeeded.
            await(() -> {
                int done = 0;
                for (Map.Entry<String, List<Integer>> e : attempts.entrySet()) {
                    boolean always = e.getKey().startsWith("always-");
                    if (always ? e.getValue().size() >= max : succeeded.containsKey(e.getKey())) {
                        done++;
                    }
                }
                return done >= 3 * n;
            });
            readDlq(dlqGroup, dlqWant);
            // The push consumer keeps running: nothing may come back after the DLQ move.
            sleep(1000);
        }
        String ones = "[1]";
        String all = attemptsList(max);
        for (Map.Entry<String, List<Integer>> e : attempts.entrySet()) {
            String kind = e.getKey().substring(0, e.getKey().indexOf('-'));
            String seen = e.getValue().toString();
            boolean right = kind.equals("ok") ? seen.equals(ones) : seen.equals(all);
            s.inc(right ? kind + "_attempts_ok" : "wrong_attempts");
            if (!right) s.putIfAbsent("first_wrong_attempts", e.getKey() + " " + seen);
        }
        Map<String, Long> gaps = new java.util.TreeMap<>();
        minGap.forEach((k, v) -> gaps.put("after_" + k, v.get()));
        s.put("min_gap_ms", gaps);
        Map<String, Long> longest = new java.util.TreeMap<>();
        maxGap.forEach((k, v) -> longest.put("after_" + k, v.get()));
        s.put("max_gap_ms", longest);
        // A retry comes no sooner than the backoff, and not much later either.
        long slack = args.num("gap-slack-ms", 5000);
        boolean gapsOk = true;
        for (int a = 1; a < max; a++) {
            long want = backoff[Math.min(a, backoff.length) - 1];
            Long lo = gaps.get("after_" + a);
            Long hi = longest.get("after_" + a);
            if (lo == null || lo < want || hi == null || hi > want + slack) gapsOk = false;
        }
        s.put("gaps_ok", gapsOk);
        return s.num("ok_attempts_ok") == n && s.num("twice_attempts_ok") == n
            && s.num("always_attempts_ok") == n && s.num("dlq_received") == n && gapsOk
            && s.zero("wrong_attempts", "dlq_unexpected", "dlq_duplicates", "dlq_mismatched",
                "ack_errors", "receive_errors");
    }

    private static String attemptsList(int max) {
        List<Integer> l = new ArrayList<>();
        for (int i = 1; i <= max; i++) l.add(i);
        return l.toString();
    }

    /** Reads %DLQ%group until every message in {@code want} (id to body) arrived. */
    private void readDlq(String dlqGroup, Map<String, String> want) throws Exception {
        String dlq = "%DLQ%" + group;
        SimpleConsumer c = null;
        // The DLQ topic appears with the first message moved there; until then the
        // consumer's startup route query fails with "topic not found".
        while (c == null && beforeDeadline()) {
            try {
                c = simple(dlqGroup, dlq, FilterExpression.SUB_ALL);
            } catch (ClientException | IllegalStateException e) {
                // A failed startup surfaces as IllegalStateException (the service
                // did not reach RUNNING), with the route error as its cause.
                s.inc("dlq_start_retries");
                sleep(500);
            }
        }
        if (c == null) {
            s.error("no consumer could start on " + dlq);
            return;
        }
        Set<String> seen;
        try {
            seen = receiveWanted(c, want.keySet(), Scenarios::idOf, "dlq_",
                mv -> System.err.println("unexpected in DLQ: " + describe(mv)), (mv, id) -> {
                    String body = want.get(id);
                    if (!body.equals(text(mv)) || !"always".equals(prop(mv, "kind"))
                            || !mv.getKeys().contains(body)) {
                        s.inc("dlq_mismatched");
                        System.err.println("changed in DLQ: " + describe(mv));
                    }
                });
            s.add("dlq_unexpected", tail(c, 1000));
        } finally {
            closeQuietly(c);
        }
        s.put("dlq_received", seen.size());
    }

    // ---------------------------------------------------------------- push under load

    /**
     * A PushConsumer under load: --count messages sent with bounded concurrency
     * (sendAsync, 64 in flight) while the consumer runs; each must be consumed, and
     * duplicates (deliveries beyond the first) are counted.
     */
    private boolean pushLoad() throws Exception {
        int n = args.num("count", 2000);
        AtomicIntegerArray hits = new AtomicIntegerArray(n);
        AtomicInteger distinct = new AtomicInteger();
        MessageListener listener = mv -> {
            String body = text(mv);
            int i;
            try {
                i = Integer.parseInt(body.substring(body.indexOf('-') + 1));
            } catch (RuntimeException e) {
                s.inc("unexpected");
                return ConsumeResult.SUCCESS;
            }
            if (i < 0 || i >= n) {
                s.inc("unexpected");
            } else if (hits.incrementAndGet(i) == 1) {
                distinct.incrementAndGet();
            } else {
                s.inc("duplicates");
            }
            if (mv.getDeliveryAttempt() > 1) s.inc("redelivered");
            s.inc("deliveries");
            return ConsumeResult.SUCCESS;
        };
        long t0 = System.nanoTime();
        try (PushConsumer c = push(group, topic, args.num("threads", 8), listener)) {
            try (Producer p = producer(topic)) {
                Semaphore window = new Semaphore(64);
                long t = System.nanoTime();
                for (int i = 0; i < n; i++) {
                    window.acquire();
                    p.sendAsync(message(topic, "load-" + i).setTag("load").build())
                        .whenComplete((r, e) -> {
                            window.release();
                            if (e != null) {
                                s.inc("send_errors");
                                s.error("sendAsync: " + e);
                            } else {
                                s.inc("sent");
                            }
                        });
                }
                window.acquire(64);
                s.put("send_secs", secsSince(t));
            }
            await(() -> distinct.get() >= n);
            s.put("consume_secs", secsSince(t0));
            // Anything delivered again shows up within this wait.
            sleep(3000);
        }
        s.put("received", distinct.get());
        s.put("missing", n - distinct.get());
        return s.num("sent") == n && distinct.get() == n
            && s.zero("send_errors", "unexpected", "duplicates");
    }

    // ---------------------------------------------------------------- plumbing

    /** The summary: insertion-ordered, safe to update from client threads. */
    private static final class Summary {
        private final Map<String, Object> m = new LinkedHashMap<>();

        synchronized void put(String k, Object v) {
            m.put(k, v);
        }

        synchronized void putIfAbsent(String k, Object v) {
            m.putIfAbsent(k, v);
        }

        synchronized Object get(String k) {
            return m.get(k);
        }

        synchronized void add(String k, long d) {
            m.put(k, num(k) + d);
        }

        void inc(String k) {
            add(k, 1);
        }

        synchronized void max(String k, long v) {
            m.put(k, Math.max(num(k), v));
        }

        synchronized long num(String k) {
            Object v = m.get(k);
            return v instanceof Number n ? n.longValue() : 0;
        }

        /** Every named counter is zero (or absent); absent ones are added as 0. */
        synchronized boolean zero(String... ks) {
            boolean all = true;
            for (String k : ks) {
                m.putIfAbsent(k, 0L);
                all &= num(k) == 0;
            }
            return all;
        }

        /** Keeps the first error: later ones are usually its consequences. */
        synchronized void error(String e) {
            m.putIfAbsent("error", e);
        }

        synchronized String json() {
            return Json.write(m);
        }
    }

    /** `--name value` pairs. */
    private record Args(Map<String, String> m) {
        static Args parse(String[] argv) {
            Map<String, String> m = new HashMap<>();
            for (int i = 0; i < argv.length; i++) {
                if (!argv[i].startsWith("--") || i + 1 >= argv.length) {
                    throw new IllegalArgumentException("expected --name value, got " + argv[i]);
                }
                m.put(argv[i].substring(2), argv[++i]);
            }
            return new Args(m);
        }

        String str(String k) {
            String v = m.get(k);
            if (v == null) throw new IllegalArgumentException("--" + k + " is required");
            return v;
        }

        int num(String k, int dflt) {
            String v = m.get(k);
            return v == null ? dflt : Integer.parseInt(v);
        }
    }
}
