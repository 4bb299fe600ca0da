//! Where a client sends and receives: QueryRoute, QueryAssignment,
//! Heartbeat, and the server's half of the settings exchange on the
//! Telemetry stream (protocol.md §4.4, §4.5, §8).

use pier_proto::rocketmq::*;
use pier_store::auth::policy::Action;
use tonic::{Request, Response};

use super::{Inner, RpcResult, Target, DEFAULT_BATCH};
use crate::auth::Need;
use crate::config::MetricsCollector;
use crate::context::ClientContext;
use crate::convert;
use crate::status::{ok, Rejection};
use crate::validate;

/// Name every route gives the (single, logical) broker.
pub const BROKER_NAME: &str = "pier";

fn accept_types(t: i32) -> Vec<i32> {
    use pier_proto::admin::TopicType;
    let mt = match TopicType::try_from(t).unwrap_or(TopicType::Normal) {
        TopicType::Fifo => MessageType::Fifo,
        TopicType::Delay => MessageType::Delay,
        TopicType::Transaction => MessageType::Transaction,
        _ => MessageType::Normal,
    };
    vec![mt as i32]
}

/// Most addresses an access point may list: a client names the proxies it
/// was configured with, and each route repeats them once per queue.
const MAX_ACCESS_POINT_ADDRESSES: usize = 64;
/// Longest host name of an access point (a DNS name is at most 253).
const MAX_HOST_LEN: usize = 255;

/// The access point as the client gave it, with a scheme filled in when the
/// client left it unset (Python needs one to dial, protocol.md §4.4).
fn access_point(e: Option<Endpoints>) -> Result<Endpoints, Rejection> {
    let mut e = e.filter(|e| !e.addresses.is_empty()).ok_or_else(|| {
        Rejection::new(
            Code::IllegalAccessPoint,
            "endpoints (the access point the client was configured with) are required",
        )
    })?;
    if e.addresses.len() > MAX_ACCESS_POINT_ADDRESSES {
        return Err(Rejection::new(
            Code::IllegalAccessPoint,
            format!(
                "the access point lists {} addresses; the limit is {MAX_ACCESS_POINT_ADDRESSES}",
                e.addresses.len()
            ),
        ));
    }
    if let Some(a) = e.addresses.iter().find(|a| a.host.len() > MAX_HOST_LEN) {
        return Err(Rejection::new(
            Code::IllegalAccessPoint,
            format!(
                "an access point host is {} bytes long; the limit is {MAX_HOST_LEN}",
                a.host.len()
            ),
        ));
    }
    if e.scheme == AddressScheme::Unspecified as i32 {
        let host = &e.addresses[0].host;
        e.scheme = if host.parse::<std::net::Ipv4Addr>().is_ok() {
            AddressScheme::IPv4 as i32
        } else if host.parse::<std::net::Ipv6Addr>().is_ok() {
            AddressScheme::IPv6 as i32
        } else {
            AddressScheme::DomainName as i32
        };
    }
    Ok(e)
}

pub(super) async fn heartbeat(
    inner: &Inner,
    request: Request<HeartbeatRequest>,
) -> RpcResult<HeartbeatResponse> {
    // Always OK, even for an empty probe (Go) or an unknown client. A
    // consumer's heartbeat needs Sub as its group (as the reference).
    let req = request.get_ref();
    let ctx = ClientContext::of(&request);
    let consumer = !matches!(
        ClientType::try_from(req.client_type).unwrap_or(ClientType::Unspecified),
        ClientType::Producer | ClientType::Unspecified
    );
    if let (true, Ok(group)) = (
        consumer,
        validate::group(req.group.as_ref(), &ctx.namespace),
    ) {
        if let Err(rej) = inner.authorize(&ctx, &[Need::group(&group)]) {
            return Ok(Response::new(HeartbeatResponse {
                status: Some(rej.to_status(&ctx)),
            }));
        }
    }
    if let Some(id) = &ctx.client_id {
        inner.sessions.touch(id);
    }
    Ok(Response::new(HeartbeatResponse { status: Some(ok()) }))
}

impl Inner {
    pub(super) async fn query_route(
        &self,
        ctx: &ClientContext,
        req: QueryRouteRequest,
    ) -> Result<QueryRouteResponse, Rejection> {
        self.admit(ctx)?;
        let name = validate::topic(req.topic.as_ref(), &ctx.namespace)?;
        // Producers and consumers both ask for routes (reference: Pub or Sub).
        if self
            .authorize(ctx, &[Need::topic(&name, Action::Pub)])
            .is_err()
        {
            self.authorize(ctx, &[Need::topic(&name, Action::Sub)])
                .map_err(|mut rej| {
                    rej.message = rej.message.replace(" lacks Sub ", " lacks Pub or Sub ");
                    rej
                })?;
        }
        let endpoints = access_point(req.endpoints)?;
        let topic = self.topic(&name).await?;
        let types = accept_types(topic.r#type);
        let message_queues = (0..topic.queues)
            .map(|id| MessageQueue {
                topic: req.topic.clone(),
                id: id as i32,
                permission: Permission::ReadWrite as i32,
                broker: Some(Broker {
                    name: BROKER_NAME.into(),
                    id: 0,
                    endpoints: Some(endpoints.clone()),
                }),
                accept_message_types: types.clone(),
            })
            .collect();
        Ok(QueryRouteResponse {
            status: Some(ok()),
            message_queues,
        })
    }

    pub(super) async fn query_assignment(
        &self,
        ctx: &ClientContext,
        req: QueryAssignmentRequest,
    ) -> Result<QueryAssignmentResponse, Rejection> {
        self.admit(ctx)?;
        let topic_name = validate::topic(req.topic.as_ref(), &ctx.namespace)?;
        let group_name = validate::group(req.group.as_ref(), &ctx.namespace)?;
        self.authorize(
            ctx,
            &[
                Need::topic(&topic_name, Action::Sub),
                Need::group(&group_name),
            ],
        )?;
        let endpoints = access_point(req.endpoints)?;
        let topic = self.topic(&topic_name).await?;
        let group = self.group(&group_name).await?;
        let queue = |id: i32| Assignment {
            message_queue: Some(MessageQueue {
                topic: req.topic.clone(),
                id,
                permission: Permission::ReadWrite as i32,
                broker: Some(Broker {
                    name: BROKER_NAME.into(),
                    id: 0,
                    endpoints: Some(endpoints.clone()),
                }),
                accept_message_types: accept_types(topic.r#type),
            }),
        };
        // Pop semantics: the store hands out messages of every queue, so a
        // non-FIFO consumer needs one assignment meaning "any queue" (id -1,
        // as the reference proxy answers); FIFO consumers get every queue.
        let assignments = if group.fifo {
            (0..topic.queues as i32).map(queue).collect()
        } else {
            vec![queue(-1)]
        };
        Ok(QueryAssignmentResponse {
            status: Some(ok()),
            assignments,
        })
    }

    /// The server's half of the settings exchange (protocol.md §4.5, §8):
    /// the client's settings with the server-decided fields filled in.
    pub(super) async fn settings_reply(&self, ctx: &ClientContext, mut s: Settings) -> Settings {
        use retry_policy::Strategy;
        use settings::PubSub;
        let client_type =
            ClientType::try_from(s.client_type.unwrap_or(0)).unwrap_or(ClientType::Unspecified);
        match client_type {
            ClientType::Producer => {
                s.backoff_policy = Some(RetryPolicy {
                    max_attempts: 3,
                    strategy: Some(Strategy::ExponentialBackoff(ExponentialBackoff {
                        initial: Some(convert::duration(10)),
                        max: Some(convert::duration(1_000)),
                        multiplier: 2.0,
                    })),
                });
                let mut p = match s.pub_sub.take() {
                    Some(PubSub::Publishing(p)) => p,
                    _ => Publishing::default(),
                };
                p.max_body_size = self.cfg.max_body_size.min(i32::MAX as usize) as i32;
                p.validate_message_type = true;
                s.pub_sub = Some(PubSub::Publishing(p));
            }
            ClientType::PushConsumer
            | ClientType::SimpleConsumer
            | ClientType::PullConsumer
            | ClientType::LitePushConsumer
            | ClientType::LiteSimpleConsumer => {
                let mut sub = match s.pub_sub.take() {
                    Some(PubSub::Subscription(sub)) => sub,
                    _ => Subscription::default(),
                };
                // A group that cannot be read gets the defaults: the client
                // still starts, and the server's failure is logged.
                let group = match validate::group(sub.group.as_ref(), &ctx.namespace) {
                    Ok(name) => match self.group(&name).await {
                        Ok(g) => Some(g),
                        Err(rej) => {
                            let target = Target::new(None, sub.group.as_ref());
                            self.faults.report("Telemetry", target, &rej);
                            None
                        }
                    },
                    Err(_) => None,
                }
                .unwrap_or_else(|| pier_proto::admin::ConsumerGroup {
                    max_attempts: pier_store::DEFAULT_MAX_ATTEMPTS,
                    ..Default::default()
                });
                sub.fifo = Some(group.fifo);
                sub.receive_batch_size = Some(DEFAULT_BATCH as i32);
                sub.long_polling_timeout = Some(convert::duration(self.cfg.max_long_poll_ms));
                if matches!(
                    client_type,
                    ClientType::LitePushConsumer | ClientType::LiteSimpleConsumer
                ) {
                    sub.lite_subscription_quota = Some(0);
                    sub.max_lite_topic_size = Some(64);
                }
                s.pub_sub = Some(PubSub::Subscription(sub));
                s.backoff_policy = Some(consumer_backoff(&group));
            }
            _ => {}
        }
        s.metric = Some(client_metrics(
            self.cfg.metrics_collector,
            s.access_point.clone(),
        ));
        s
    }
}

/// Where a client sends its own metrics. In collector mode `proxy` that is
/// the access point it connected with (as RocketMQ's proxy does), which
/// reaches this proxy's Export service; a client that named none, or one
/// without addresses, keeps them off (the Java client refuses endpoints
/// without an address).
fn client_metrics(mode: MetricsCollector, access_point: Option<Endpoints>) -> Metric {
    match (mode, access_point) {
        (MetricsCollector::Proxy, Some(ap)) if !ap.addresses.is_empty() => Metric {
            on: true,
            endpoints: Some(ap),
        },
        _ => Metric {
            on: false,
            endpoints: None,
        },
    }
}

/// The retry policy consumers of a group follow after a failed consumption.
fn consumer_backoff(group: &pier_proto::admin::ConsumerGroup) -> RetryPolicy {
    use pier_proto::admin::retry_policy::Strategy as GroupStrategy;
    use retry_policy::Strategy;
    let strategy = match group.retry_policy.as_ref().and_then(|p| p.strategy.clone()) {
        Some(GroupStrategy::Customized(c)) => Strategy::CustomizedBackoff(CustomizedBackoff {
            next: c.next_ms.iter().map(|ms| convert::duration(*ms)).collect(),
        }),
        Some(GroupStrategy::Exponential(e)) => Strategy::ExponentialBackoff(ExponentialBackoff {
            initial: Some(convert::duration(e.initial_ms)),
            max: Some(convert::duration(e.max_ms)),
            multiplier: e.multiplier,
        }),
        // Exponential by default: the one strategy every official client
        // reads (Node ignores customized backoff, protocol.md §8).
        None => Strategy::ExponentialBackoff(ExponentialBackoff {
            initial: Some(convert::duration(1_000)),
            max: Some(convert::duration(2 * 3600 * 1000)),
            multiplier: 2.0,
        }),
    };
    RetryPolicy {
        max_attempts: group.max_attempts as i32,
        strategy: Some(strategy),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(n: usize, host: &str) -> Option<Endpoints> {
        Some(Endpoints {
            scheme: AddressScheme::Unspecified as i32,
            addresses: (0..n)
                .map(|i| Address {
                    host: host.into(),
                    port: 8081 + i as i32,
                })
                .collect(),
        })
    }

    #[test]
    fn an_access_point_is_bounded_before_routes_repeat_it() {
        let ok = access_point(point(MAX_ACCESS_POINT_ADDRESSES, "127.0.0.1")).unwrap();
        assert_eq!(ok.scheme, AddressScheme::IPv4 as i32);
        assert_eq!(
            access_point(point(MAX_ACCESS_POINT_ADDRESSES, &"h".repeat(MAX_HOST_LEN)))
                .unwrap()
                .scheme,
            AddressScheme::DomainName as i32
        );
        for bad in [
            None,
            point(0, "127.0.0.1"),
            point(MAX_ACCESS_POINT_ADDRESSES + 1, "127.0.0.1"),
            point(1, &"h".repeat(MAX_HOST_LEN + 1)),
        ] {
            let rej = access_point(bad).unwrap_err();
            assert_eq!(rej.code, Code::IllegalAccessPoint, "{}", rej.message);
        }
    }
}
