//! Cases on ChangeInvisibleDuration.

use super::*;

pub(crate) async fn cases_change(pr: &mut Probe) -> anyhow::Result<()> {
    let c = pr.c.clone_ref();
    // A good change; the old handle afterwards; the new one.
    let m = pr.fresh(&c, "cmp-normal", "cid").await?;
    let h = handle_of(&m);
    let (o, newh) = pr
        .change(
            &c,
            "cmp-g",
            "cmp-normal",
            &m,
            &h,
            Some(dur_ms(LONG_INVISIBLE_MS)),
        )
        .await;
    pr.row(
        "cid.ok",
        "ChangeInvisibleDuration (1 h) with the handle just received",
        o.detail(format!(
            "new handle {}",
            if newh.is_empty() {
                "empty"
            } else if newh == h {
                "= old"
            } else {
                "returned"
            }
        )),
    );
    let old = pr.ack(&c, "cmp-g", "cmp-normal", &m, &h).await;
    let new = pr.ack(&c, "cmp-g", "cmp-normal", &m, &newh).await;
    pr.row(
        "ack.old_handle_after_change",
        "AckMessage with the handle from before a ChangeInvisibleDuration",
        old.detail(format!(
            "ack with the new handle afterwards: {}",
            new.outcome
        )),
    );
    // A change after the ack (1 s): refused, or does the acked message come
    // back?
    let (o, _) = pr
        .change(&c, "cmp-g", "cmp-normal", &m, &newh, Some(dur_ms(1_000)))
        .await;
    let deadline = Instant::now() + Duration::from_secs(12);
    let back = pr
        .receive_body(
            &c,
            "cmp-normal",
            &body(&m),
            deadline,
            "cid.after_ack",
            false,
        )
        .await
        .unwrap_or_default();
    let after = match &back {
        Some(x) => {
            pr.ack(&c, "cmp-g", "cmp-normal", x, &handle_of(x)).await;
            format!("acked message delivered again (attempt {})", attempt(x))
        }
        None => "not delivered again".to_owned(),
    };
    pr.row(
        "cid.after_ack",
        "ChangeInvisibleDuration (1 s) after the message was acked; is it delivered again?",
        Obs::new(format!("{}, {after}", o.outcome), o.message.clone()),
    );

    let bad = [
        (
            "cid.malformed",
            "ChangeInvisibleDuration with a malformed handle \"garbage!!\"",
            Spoil::Garbage,
            "cmp-g",
            "cmp-normal",
        ),
        (
            "cid.empty_handle",
            "ChangeInvisibleDuration with an empty handle",
            Spoil::Empty,
            "cmp-g",
            "cmp-normal",
        ),
        (
            "cid.truncated",
            "ChangeInvisibleDuration with the first half of a genuine handle",
            Spoil::Truncated,
            "cmp-g",
            "cmp-normal",
        ),
        (
            "cid.tampered",
            "ChangeInvisibleDuration with a genuine handle, one character changed",
            Spoil::Tampered,
            "cmp-g",
            "cmp-normal",
        ),
        (
            "cid.other_group",
            "ChangeInvisibleDuration of a handle of cmp-g, for group cmp-g2",
            Spoil::Genuine,
            "cmp-g2",
            "cmp-normal",
        ),
        (
            "cid.other_topic",
            "ChangeInvisibleDuration of a handle of cmp-normal, for topic cmp-normal2",
            Spoil::Genuine,
            "cmp-g",
            "cmp-normal2",
        ),
    ];
    pr.spoiled_handles(&c, &bad, async |pr, m, group, topic, sent| {
        let (o, back) = pr
            .change(&c, group, topic, m, sent, Some(dur_ms(LONG_INVISIBLE_MS)))
            .await;
        let back = if back.is_empty() {
            "empty"
        } else if back == sent {
            "the one sent"
        } else {
            "another"
        };
        (o, Some(format!("handle returned: {back}")))
    })
    .await?;

    // Out-of-range durations; a message that becomes visible again is noted.
    for (id, title, d) in [
        (
            "cid.invisible_negative",
            "ChangeInvisibleDuration to -5 s",
            Some(dur_ms(-5_000)),
        ),
        (
            "cid.invisible_huge",
            "ChangeInvisibleDuration to 13 h (over the 12 h maximum)",
            Some(dur_ms(13 * 3_600_000)),
        ),
        (
            "cid.invisible_missing",
            "ChangeInvisibleDuration without invisible_duration",
            None,
        ),
    ] {
        let m = pr.fresh(&c, "cmp-normal", id).await?;
        let h = handle_of(&m);
        let (o, newh) = pr.change(&c, "cmp-g", "cmp-normal", &m, &h, d).await;
        let use_h = if o.is(Code::Ok) && !newh.is_empty() {
            newh
        } else {
            h
        };
        let after = pr.ack(&c, "cmp-g", "cmp-normal", &m, &use_h).await;
        pr.row(
            id,
            title,
            o.detail(format!("ack afterwards: {}", after.outcome)),
        );
    }

    // Nack: 0 s and 1 s, then how soon the message comes back.
    for (id, title, ms) in [
        (
            "cid.zero_redelivery",
            "ChangeInvisibleDuration to 0 (a nack), then receive: when does it come back",
            0,
        ),
        (
            "cid.nack_1s_redelivery",
            "ChangeInvisibleDuration to 1 s (the Java push consumer's nack), then receive",
            1_000,
        ),
    ] {
        let m = pr.fresh(&c, "cmp-normal", id).await?;
        let h = handle_of(&m);
        let t0 = Instant::now();
        let (o, _) = pr
            .change(&c, "cmp-g", "cmp-normal", &m, &h, Some(dur_ms(ms)))
            .await;
        if !o.is(Code::Ok) {
            pr.row(id, title, o);
            continue;
        }
        let deadline = t0 + Duration::from_secs(40);
        let back = pr
            .receive_body(&c, "cmp-normal", &body(&m), deadline, id, false)
            .await
            .unwrap_or_default()
            .map(|x| (t0.elapsed(), x));
        let obs = match back {
            None => Obs::new("OK, not back within 40 s", o.message),
            Some((after, x)) => {
                pr.ack(&c, "cmp-g", "cmp-normal", &x, &handle_of(&x)).await;
                // On time: within a second of the asked-for delay.
                let class = if after.as_millis() <= ms as u128 + 1_000 {
                    "back on time"
                } else {
                    "back late"
                };
                Obs::new(format!("OK, {class}, attempt {}", attempt(&x)), o.message)
                    .detail(format!("back after {}", secs(after)))
            }
        };
        pr.row(id, title, obs);
    }
    Ok(())
}
