//! The probe's state and its raw calls, which never panic: a failed call is
//! itself an observation.

use super::*;

/// The message ids the Java client makes: version 01, a MAC, the pid,
/// seconds since 2021 and a sequence number, in upper-case hex.
pub(crate) fn message_id(seq: u64) -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        .saturating_sub(1_609_459_200);
    format!(
        "01{:012X}{:04X}{:08X}{:08X}",
        0x0242_ac11_0002u64,
        std::process::id() & 0xffff,
        secs & 0xffff_ffff,
        seq & 0xffff_ffff
    )
}

pub(crate) struct Recv {
    pub(crate) obs: Obs,
    pub(crate) msgs: Vec<Message>,
    pub(crate) elapsed: Duration,
}

pub(crate) fn sp(m: &Message) -> SystemProperties {
    m.system_properties.clone().unwrap_or_default()
}

pub(crate) fn body(m: &Message) -> String {
    String::from_utf8_lossy(&m.body).into_owned()
}

pub(crate) fn attempt(m: &Message) -> i32 {
    sp(m).delivery_attempt.unwrap_or(0)
}

pub(crate) fn handle_of(m: &Message) -> String {
    sp(m).receipt_handle.unwrap_or_default()
}

/// A receive request's knobs.
#[derive(Clone)]
pub(crate) struct RecvOpts {
    pub(crate) batch: i32,
    pub(crate) invisible_ms: Option<i64>,
    pub(crate) poll_ms: Option<i64>,
    pub(crate) deadline: Duration,
    pub(crate) filter: Option<FilterExpression>,
}

impl RecvOpts {
    /// `batch` messages held for the whole run ([`LONG_INVISIBLE_MS`]),
    /// a 5 s long poll.
    pub(crate) fn held(batch: i32) -> RecvOpts {
        RecvOpts::new(batch, LONG_INVISIBLE_MS, 5_000)
    }

    pub(crate) fn new(batch: i32, invisible_ms: i64, poll_ms: i64) -> RecvOpts {
        RecvOpts {
            batch,
            invisible_ms: Some(invisible_ms),
            poll_ms: Some(poll_ms),
            deadline: Duration::from_millis(poll_ms.max(0) as u64 + 10_000),
            filter: Some(FilterExpression {
                r#type: FilterType::Tag as i32,
                expression: "*".into(),
            }),
        }
    }
}

pub(crate) struct Probe {
    pub(crate) endpoint: String,
    pub(crate) rows: Vec<(String, String, Obs)>,
    /// First message queue of each topic from QueryRoute (what clients use).
    pub(crate) queues: BTreeMap<String, MessageQueue>,
    pub(crate) seq: AtomicU64,
    /// Messages that showed up where a case did not expect them.
    pub(crate) strays: Vec<String>,
    pub(crate) p: Session,
    pub(crate) pt: Session,
    pub(crate) c: Session,
    pub(crate) c2: Session,
    pub(crate) cf: Session,
    pub(crate) cd: Session,
}

impl Probe {
    pub(crate) fn row(&mut self, id: &str, title: &str, obs: Obs) {
        eprintln!("  {id}: {} {} {}", obs.outcome, obs.message, obs.detail);
        self.rows.push((id.to_owned(), title.to_owned(), obs));
    }

    pub(crate) fn next_id(&self) -> String {
        message_id(self.seq.fetch_add(1, Ordering::Relaxed))
    }

    /// A message as the Java producer builds it.
    pub(crate) fn msg(&self, topic: &str, kind: MessageType, body: &str) -> Message {
        Message {
            topic: Some(resource(topic)),
            user_properties: Default::default(),
            system_properties: Some(SystemProperties {
                message_id: self.next_id(),
                message_type: kind as i32,
                body_encoding: Encoding::Identity as i32,
                born_timestamp: Some(now_ts(0)),
                born_host: "127.0.0.1".into(),
                ..Default::default()
            }),
            body: body.as_bytes().to_vec().into(),
        }
    }

    /// A FIFO message of `group`.
    pub(crate) fn fifo_msg(&self, topic: &str, group: &str, body: &str) -> Message {
        let mut m = self.msg(topic, MessageType::Fifo, body);
        if let Some(s) = m.system_properties.as_mut() {
            s.message_group = Some(group.into());
        }
        m
    }

    pub(crate) fn queue(&self, topic: &str) -> MessageQueue {
        let mut q = self
            .queues
            .get(topic)
            .or_else(|| self.queues.get("cmp-normal"))
            .cloned()
            .unwrap_or_default();
        q.topic = Some(resource(topic));
        q
    }

    pub(crate) async fn send_many(
        &self,
        s: &Session,
        msgs: Vec<Message>,
    ) -> (Obs, Vec<SendResultEntry>) {
        match s
            .raw
            .messaging()
            .send_message(s.raw.req(SendMessageRequest { messages: msgs }))
            .await
        {
            Err(e) => (Obs::transport(&e), Vec::new()),
            Ok(r) => {
                let r = r.into_inner();
                (status_obs(r.status.as_ref()), r.entries)
            }
        }
    }

    /// One message: the entry's status (the top-level one when there is no
    /// entry), and the entry.
    pub(crate) async fn send(&self, s: &Session, m: Message) -> (Obs, SendResultEntry) {
        let (top, entries) = self.send_many(s, vec![m]).await;
        match entries.into_iter().next() {
            Some(e) => (status_obs(e.status.as_ref()), e),
            None => (top.detail("no result entry"), SendResultEntry::default()),
        }
    }

    pub(crate) async fn receive_req(
        &self,
        s: &Session,
        req: ReceiveMessageRequest,
        deadline: Duration,
    ) -> Recv {
        use receive_message_response::Content;
        let t0 = Instant::now();
        let mut r = s.raw.req(req);
        r.set_timeout(deadline);
        let mut stream = match s.raw.messaging().receive_message(r).await {
            Ok(r) => r.into_inner(),
            Err(e) => {
                return Recv {
                    obs: Obs::transport(&e),
                    msgs: Vec::new(),
                    elapsed: t0.elapsed(),
                }
            }
        };
        let mut status: Option<Status> = None;
        let mut statuses = 0;
        let mut msgs = Vec::new();
        let mut error = None;
        loop {
            match stream.message().await {
                Ok(Some(frame)) => match frame.content {
                    Some(Content::Status(st)) => {
                        statuses += 1;
                        status = Some(st);
                    }
                    Some(Content::Message(m)) => msgs.push(m),
                    Some(Content::DeliveryTimestamp(_)) | None => {}
                },
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        let mut obs = match (&error, &status) {
            (Some(e), None) => Obs::transport(e),
            _ => status_obs(status.as_ref()),
        };
        if let Some(e) = error.filter(|_| status.is_some()) {
            obs = obs.detail(format!("then gRPC {:?}", e.code()));
        }
        if statuses > 1 {
            obs = obs.detail(format!("{statuses} status frames"));
        }
        Recv {
            obs,
            msgs,
            elapsed: t0.elapsed(),
        }
    }

    pub(crate) fn recv_request(
        &self,
        group: &str,
        topic: &str,
        o: &RecvOpts,
    ) -> ReceiveMessageRequest {
        ReceiveMessageRequest {
            group: Some(resource(group)),
            message_queue: Some(self.queue(topic)),
            filter_expression: o.filter.clone(),
            batch_size: o.batch,
            invisible_duration: o.invisible_ms.map(dur_ms),
            auto_renew: false,
            long_polling_timeout: o.poll_ms.map(dur_ms),
            attempt_id: None,
        }
    }

    pub(crate) async fn receive(&self, s: &Session, topic: &str, o: RecvOpts) -> Recv {
        let group = s.group.clone().unwrap_or_default();
        let req = self.recv_request(&group, topic, &o);
        self.receive_req(s, req, o.deadline).await
    }

    pub(crate) async fn ack_entries(
        &self,
        s: &Session,
        group: &str,
        topic: &str,
        entries: Vec<(String, String)>,
    ) -> (Obs, Vec<Obs>) {
        let req = AckMessageRequest {
            group: Some(resource(group)),
            topic: Some(resource(topic)),
            entries: entries
                .into_iter()
                .map(|(message_id, receipt_handle)| AckMessageEntry {
                    message_id,
                    receipt_handle,
                    lite_topic: None,
                })
                .collect(),
        };
        match s.raw.messaging().ack_message(s.raw.req(req)).await {
            Err(e) => (Obs::transport(&e), Vec::new()),
            Ok(r) => {
                let r = r.into_inner();
                let each = r
                    .entries
                    .iter()
                    .map(|e| status_obs(e.status.as_ref()))
                    .collect();
                (status_obs(r.status.as_ref()), each)
            }
        }
    }

    /// Acks one handle; the entry's status (or the top-level one).
    pub(crate) async fn ack(
        &self,
        s: &Session,
        group: &str,
        topic: &str,
        m: &Message,
        handle: &str,
    ) -> Obs {
        let (top, each) = self
            .ack_entries(s, group, topic, vec![(sp(m).message_id, handle.to_owned())])
            .await;
        each.into_iter().next().unwrap_or(top)
    }

    pub(crate) async fn change(
        &self,
        s: &Session,
        group: &str,
        topic: &str,
        m: &Message,
        handle: &str,
        invisible: Option<prost_types::Duration>,
    ) -> (Obs, String) {
        let req = ChangeInvisibleDurationRequest {
            group: Some(resource(group)),
            topic: Some(resource(topic)),
            receipt_handle: handle.to_owned(),
            invisible_duration: invisible,
            message_id: sp(m).message_id,
            lite_topic: None,
            suspend: None,
        };
        match s
            .raw
            .messaging()
            .change_invisible_duration(s.raw.req(req))
            .await
        {
            Err(e) => (Obs::transport(&e), String::new()),
            Ok(r) => {
                let r = r.into_inner();
                (status_obs(r.status.as_ref()), r.receipt_handle)
            }
        }
    }

    /// Runs bad-handle cases `(id, title, spoil, group, topic)`: for each, a
    /// fresh message of cmp-normal (group cmp-g), `call` with its handle
    /// spoiled (naming `group` and `topic`), then an ack with the genuine
    /// handle. The row's detail is `call`'s note, if any, then that ack's
    /// outcome.
    pub(crate) async fn spoiled_handles(
        &mut self,
        c: &Session,
        cases: &[(&str, &str, Spoil, &str, &str)],
        mut call: impl AsyncFnMut(&Probe, &Message, &str, &str, &str) -> (Obs, Option<String>),
    ) -> anyhow::Result<()> {
        for &(id, title, spoil, group, topic) in cases {
            let m = self.fresh(c, "cmp-normal", id).await?;
            let h = handle_of(&m);
            let (o, note) = call(self, &m, group, topic, &spoil.apply(&h)).await;
            let after = self.ack(c, "cmp-g", "cmp-normal", &m, &h).await;
            let after = format!("genuine ack afterwards: {}", after.outcome);
            let detail = match note {
                Some(note) => format!("{note}; {after}"),
                None => after,
            };
            self.row(id, title, o.detail(detail));
        }
        Ok(())
    }

    /// Sends one message with a fresh body to `topic` and receives it for
    /// the consumer `s` (long invisible time). Other messages received on
    /// the way are acked and noted as strays.
    pub(crate) async fn fresh(
        &mut self,
        s: &Session,
        topic: &str,
        label: &str,
    ) -> anyhow::Result<Message> {
        let want = format!("{label}-{}", self.seq.fetch_add(1, Ordering::Relaxed));
        let m = self.msg(topic, MessageType::Normal, &want);
        let (sent, _) = self.send(&self.p, m).await;
        if !sent.is(Code::Ok) {
            bail!("send for {label}: {} {}", sent.outcome, sent.message);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        match self
            .receive_body(s, topic, &want, deadline, label, true)
            .await
        {
            Ok(Some(m)) => Ok(m),
            Ok(None) => bail!("{label}: message not received within 30 s"),
            Err(o) => bail!("receive for {label}: {} {}", o.outcome, o.message),
        }
    }

    /// Receives as `s` from `topic` (long invisible time) until the message
    /// whose body is `want` comes, or `deadline` passes; other messages on
    /// the way are acked and noted as strays of `label`. With
    /// `stop_on_error`, a receive answering neither OK nor
    /// MESSAGE_NOT_FOUND ends the wait with its observation.
    pub(crate) async fn receive_body(
        &mut self,
        s: &Session,
        topic: &str,
        want: &str,
        deadline: Instant,
        label: &str,
        stop_on_error: bool,
    ) -> Result<Option<Message>, Obs> {
        let group = s.group.clone().unwrap_or_default();
        while Instant::now() < deadline {
            let r = self.receive(s, topic, RecvOpts::held(32)).await;
            let mut found = None;
            for m in r.msgs {
                if body(&m) == want && found.is_none() {
                    found = Some(m);
                } else {
                    self.strays
                        .push(format!("{label}: {} (attempt {})", body(&m), attempt(&m)));
                    let h = handle_of(&m);
                    self.ack(s, &group, topic, &m, &h).await;
                }
            }
            if found.is_some() {
                return Ok(found);
            }
            if stop_on_error && !r.obs.is(Code::Ok) && !r.obs.is(Code::MessageNotFound) {
                return Err(r.obs);
            }
        }
        Ok(None)
    }

    /// Receives (up to `within`) until a receive brings messages.
    pub(crate) async fn receive_some(
        &self,
        s: &Session,
        topic: &str,
        o: RecvOpts,
        within: Duration,
    ) -> Recv {
        let deadline = Instant::now() + within;
        let t0 = Instant::now();
        loop {
            let mut r = self.receive(s, topic, o.clone()).await;
            if !r.msgs.is_empty()
                || Instant::now() >= deadline
                || !(r.obs.is(Code::MessageNotFound) || r.obs.is(Code::Ok))
            {
                r.elapsed = t0.elapsed();
                return r;
            }
        }
    }

    /// Acks everything `s` can receive from `topic` (short polls).
    pub(crate) async fn drain(&mut self, s: &Session, topic: &str) -> usize {
        let group = s.group.clone().unwrap_or_default();
        let mut n = 0;
        for _ in 0..20 {
            let r = self
                .receive(s, topic, RecvOpts::new(32, 30_000, 5_000))
                .await;
            if r.msgs.is_empty() {
                break;
            }
            for m in &r.msgs {
                n += 1;
                self.ack(s, &group, topic, m, &handle_of(m)).await;
            }
        }
        n
    }
}

/// How a case spoils a genuine receipt handle.
#[derive(Clone, Copy)]
pub(crate) enum Spoil {
    Garbage,
    Empty,
    Truncated,
    Tampered,
    Genuine,
}

impl Spoil {
    pub(crate) fn apply(self, h: &str) -> String {
        match self {
            Spoil::Garbage => "garbage!!".into(),
            Spoil::Empty => String::new(),
            Spoil::Truncated => h.chars().take(h.chars().count() / 2).collect(),
            Spoil::Tampered => tamper(h),
            Spoil::Genuine => h.to_owned(),
        }
    }
}

/// A handle with one character changed in its middle (a digit for a digit,
/// a letter for a letter), so it keeps its shape.
pub(crate) fn tamper(h: &str) -> String {
    let mut b = h.as_bytes().to_vec();
    if b.is_empty() {
        return "x".into();
    }
    // The first alphanumeric byte at or after the middle.
    let start = b.len() / 2;
    let i = (start..b.len())
        .chain(0..start)
        .find(|&i| b[i].is_ascii_alphanumeric())
        .unwrap_or(start);
    b[i] = match b[i] {
        b'0'..=b'8' => b[i] + 1,
        b'9' => b'0',
        b'a'..=b'y' | b'A'..=b'Y' => b[i] + 1,
        b'z' => b'a',
        b'Z' => b'A',
        _ => b'A',
    };
    String::from_utf8_lossy(&b).into_owned()
}
