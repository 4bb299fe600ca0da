//! ACL rules in the model of RocketMQ 5.3 ACL 2.0, parsed and matched.
//!
//! A rule names a user, a resource pattern (`Topic:NAME`, `Group:NAME`,
//! `Topic:orders-*`, `Group:*`, or `*` for any resource), actions (`Pub`,
//! `Sub`, `All`), a decision (Allow or Deny) and optional source networks.
//! A request is allowed when some rule of its user allows it and no rule of
//! that user denies it (deny wins); with no rule at all it is denied. Admin
//! users skip the rules (the proxy checks that first).
//!
//! The store validates rules with this module when they are granted; the
//! proxy matches requests against them.

use std::fmt;
use std::net::IpAddr;

use pier_proto::admin::{AclDecision, AclRule};

/// What a resource is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    /// A topic.
    Topic,
    /// A consumer group.
    Group,
}

impl fmt::Display for ResourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResourceKind::Topic => "Topic",
            ResourceKind::Group => "Group",
        })
    }
}

/// What a request does to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Send messages to a topic (and end their transactions).
    Pub,
    /// Consume from a topic, or as a consumer group.
    Sub,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Pub => "Pub",
            Action::Sub => "Sub",
        })
    }
}

const PUB: u8 = 1;
const SUB: u8 = 2;
const ALL: u8 = PUB | SUB;

fn action_bit(a: Action) -> u8 {
    match a {
        Action::Pub => PUB,
        Action::Sub => SUB,
    }
}

/// The names a rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum NamePattern {
    Any,
    Literal(String),
    Prefix(String),
}

impl NamePattern {
    fn matches(&self, name: &str) -> bool {
        match self {
            NamePattern::Any => true,
            NamePattern::Literal(l) => l == name,
            NamePattern::Prefix(p) => name.starts_with(p.as_str()),
        }
    }
}

/// A network a request may come from: an address and a prefix length.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    fn parse(s: &str) -> Result<Cidr, String> {
        let bad = || format!("{s:?} is not a network (CIDR such as 10.0.0.0/8) or an address");
        let (addr, bits) = match s.split_once('/') {
            Some((a, b)) => (a, Some(b.parse::<u8>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let net: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = bits.unwrap_or(max);
        if bits > max {
            return Err(bad());
        }
        Ok(Cidr { net, bits })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        // An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d.
        let ip = ip.to_canonical();
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                prefix_eq(&n.octets(), &a.octets(), usize::from(self.bits))
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                prefix_eq(&n.octets(), &a.octets(), usize::from(self.bits))
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.bits)
    }
}

/// Whether the first `bits` bits of `a` and `b` agree.
fn prefix_eq(a: &[u8], b: &[u8], bits: usize) -> bool {
    let whole = bits / 8;
    if a.get(..whole) != b.get(..whole) {
        return false;
    }
    let rest = bits % 8;
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    match (a.get(whole), b.get(whole)) {
        (Some(x), Some(y)) => x & mask == y & mask,
        _ => false,
    }
}

/// One parsed rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    user: String,
    /// `None`: any kind of resource (`*`).
    kind: Option<ResourceKind>,
    name: NamePattern,
    actions: u8,
    allow: bool,
    sources: Vec<Cidr>,
}

/// Characters of topic and group names (protocol.md §4.3).
fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '%' | '|' | '_' | '-')
}

fn parse_resource(s: &str) -> Result<(Option<ResourceKind>, NamePattern), String> {
    let s = s.trim();
    if s == "*" {
        return Ok((None, NamePattern::Any));
    }
    let bad = || {
        format!("resource {s:?} is not Topic:NAME, Group:NAME (NAME may end with * or be *) or *")
    };
    let (kind, name) = s.split_once(':').ok_or_else(bad)?;
    let kind = if kind.eq_ignore_ascii_case("topic") {
        ResourceKind::Topic
    } else if kind.eq_ignore_ascii_case("group") {
        ResourceKind::Group
    } else {
        return Err(bad());
    };
    let pattern = match name.strip_suffix('*') {
        Some("") => NamePattern::Any,
        Some(stem) if stem.chars().all(name_char) => NamePattern::Prefix(stem.to_owned()),
        None if !name.is_empty() && name.chars().all(name_char) => {
            NamePattern::Literal(name.to_owned())
        }
        _ => return Err(bad()),
    };
    Ok((Some(kind), pattern))
}

fn parse_actions(actions: &[String]) -> Result<u8, String> {
    if actions.is_empty() {
        return Err("a rule needs at least one action: Pub, Sub or All".into());
    }
    let mut bits = 0;
    for a in actions {
        for a in a.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            bits |= match a.to_ascii_lowercase().as_str() {
                "pub" => PUB,
                "sub" => SUB,
                "all" | "*" => ALL,
                _ => return Err(format!("unknown action {a:?}: use Pub, Sub or All")),
            };
        }
    }
    if bits == 0 {
        return Err("a rule needs at least one action: Pub, Sub or All".into());
    }
    Ok(bits)
}

impl Policy {
    /// Parses and checks a rule; the error says what is wrong with it.
    pub fn parse(rule: &AclRule) -> Result<Policy, String> {
        if rule.user.is_empty() {
            return Err("a rule needs a user".into());
        }
        let (kind, name) = parse_resource(&rule.resource)?;
        let actions = parse_actions(&rule.actions)?;
        let allow = match AclDecision::try_from(rule.decision) {
            Ok(AclDecision::Deny) => false,
            Ok(AclDecision::Allow | AclDecision::Unspecified) => true,
            Err(_) => return Err(format!("unknown decision {}", rule.decision)),
        };
        let sources = rule
            .sources
            .iter()
            .map(|s| Cidr::parse(s))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Policy {
            user: rule.user.clone(),
            kind,
            name,
            actions,
            allow,
            sources,
        })
    }

    /// The user this rule is about.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Whether this rule allows (or else denies).
    pub fn allows(&self) -> bool {
        self.allow
    }

    /// The rule written the one way the store keeps it.
    pub fn to_rule(&self) -> AclRule {
        let mut actions = Vec::new();
        if self.actions == ALL {
            actions.push("All".to_owned());
        } else {
            if self.actions & PUB != 0 {
                actions.push("Pub".to_owned());
            }
            if self.actions & SUB != 0 {
                actions.push("Sub".to_owned());
            }
        }
        AclRule {
            user: self.user.clone(),
            resource: self.resource(),
            actions,
            decision: if self.allow {
                AclDecision::Allow
            } else {
                AclDecision::Deny
            } as i32,
            sources: self.sources.iter().map(ToString::to_string).collect(),
        }
    }

    /// The resource pattern, written canonically.
    pub fn resource(&self) -> String {
        let name = match &self.name {
            NamePattern::Any => "*".to_owned(),
            NamePattern::Literal(l) => l.clone(),
            NamePattern::Prefix(p) => format!("{p}*"),
        };
        match self.kind {
            None => "*".into(),
            Some(k) => format!("{k}:{name}"),
        }
    }

    /// Whether this rule speaks about `action` on `kind:name` from `source`.
    fn applies(
        &self,
        kind: ResourceKind,
        name: &str,
        action: Action,
        source: Option<IpAddr>,
    ) -> bool {
        self.kind.is_none_or(|k| k == kind)
            && self.name.matches(name)
            && self.actions & action_bit(action) != 0
            && (self.sources.is_empty()
                || source.is_some_and(|ip| self.sources.iter().any(|c| c.contains(ip))))
    }
}

/// Whether `policies` (the rules of one user) let it do `action` on
/// `kind:name` from `source`: some rule allows and none denies.
pub fn permits(
    policies: &[Policy],
    kind: ResourceKind,
    name: &str,
    action: Action,
    source: Option<IpAddr>,
) -> bool {
    let mut allowed = false;
    for p in policies {
        if p.applies(kind, name, action, source) {
            if !p.allow {
                return false;
            }
            allowed = true;
        }
    }
    allowed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(resource: &str, actions: &[&str], deny: bool, sources: &[&str]) -> Policy {
        Policy::parse(&AclRule {
            sources: sources.iter().map(|s| s.to_string()).collect(),
            ..crate::auth::tests::rule("alice", resource, actions, deny)
        })
        .unwrap()
    }

    use Action::*;
    use ResourceKind::*;

    #[test]
    fn literal_prefix_and_wildcard() {
        let p = [rule("Topic:orders-*", &["Pub"], false, &[])];
        assert!(permits(&p, Topic, "orders-eu", Pub, None));
        assert!(!permits(&p, Topic, "orders-eu", Sub, None));
        assert!(!permits(&p, Topic, "payments", Pub, None));
        assert!(!permits(&p, Group, "orders-eu", Pub, None));
        let p = [rule("topic:t1", &["pub,sub"], false, &[])];
        assert!(permits(&p, Topic, "t1", Sub, None));
        assert!(!permits(&p, Topic, "t10", Sub, None));
        let p = [rule("*", &["All"], false, &[])];
        assert!(permits(&p, Group, "g", Sub, None));
        let p = [rule("Group:*", &["Sub"], false, &[])];
        assert!(permits(&p, Group, "g", Sub, None));
        assert!(!permits(&p, Topic, "g", Sub, None));
        assert!(!permits(&[], Topic, "t", Pub, None), "no rule: denied");
    }

    #[test]
    fn deny_wins_over_allow() {
        let p = [
            rule("*", &["All"], false, &[]),
            rule("Topic:secret", &["Sub"], true, &[]),
        ];
        assert!(!permits(&p, Topic, "secret", Sub, None));
        assert!(permits(&p, Topic, "secret", Pub, None));
        assert!(permits(&p, Topic, "public", Sub, None));
    }

    #[test]
    fn sources_limit_where_a_rule_applies() {
        let p = [rule("Topic:t", &["Pub"], false, &["10.1.0.0/16", "::1"])];
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert!(permits(&p, Topic, "t", Pub, ip("10.1.2.3")));
        assert!(permits(&p, Topic, "t", Pub, ip("::ffff:10.1.2.3")));
        assert!(permits(&p, Topic, "t", Pub, ip("::1")));
        assert!(!permits(&p, Topic, "t", Pub, ip("10.2.0.1")));
        assert!(!permits(&p, Topic, "t", Pub, None));
        let odd = [rule("Topic:t", &["Pub"], false, &["192.168.0.0/23"])];
        assert!(permits(&odd, Topic, "t", Pub, ip("192.168.1.9")));
        assert!(!permits(&odd, Topic, "t", Pub, ip("192.168.2.9")));
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        let bad = |resource: &str, actions: &[&str], sources: &[&str]| {
            Policy::parse(&AclRule {
                user: "u".into(),
                resource: resource.into(),
                actions: actions.iter().map(|s| s.to_string()).collect(),
                decision: 1,
                sources: sources.iter().map(|s| s.to_string()).collect(),
            })
            .unwrap_err()
        };
        assert!(bad("Queue:x", &["Pub"], &[]).contains("resource"));
        assert!(bad("Topic:a*b", &["Pub"], &[]).contains("resource"));
        assert!(bad("Topic:", &["Pub"], &[]).contains("resource"));
        assert!(bad("Topic:t", &["Write"], &[]).contains("unknown action"));
        assert!(bad("Topic:t", &[], &[]).contains("at least one action"));
        assert!(bad("Topic:t", &["Pub"], &["10.0.0.0/33"]).contains("CIDR"));
    }

    #[test]
    fn canonical_form_round_trips() {
        let p = rule("topic:orders-*", &["sub", "pub"], true, &["10.0.0.1"]);
        let r = p.to_rule();
        assert_eq!(r.resource, "Topic:orders-*");
        assert_eq!(r.actions, vec!["All"]);
        assert_eq!(r.sources, vec!["10.0.0.1/32"]);
        assert_eq!(Policy::parse(&r).unwrap(), p);
    }
}
