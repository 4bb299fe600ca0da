//! Subscription filters, evaluated in the store so that filtered-out messages
//! never cross the network.

use crate::error::{Result, StoreError};
use pier_proto::store::{filter::Kind, Filter};

/// A parsed filter. Tag rules follow RocketMQ's `FilterAPI`: `""` or `"*"`
/// match everything; otherwise the expression is split on `||`, parts are
/// trimmed, empty parts ignored, and a message matches when its tag equals
/// one part (a message without a tag matches only `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TagFilter {
    /// Every message.
    All,
    /// Messages with one of these tags.
    AnyOf(Vec<String>),
}

impl TagFilter {
    /// Parses a subscription's filter (none: every message).
    pub(crate) fn parse(filter: Option<&Filter>) -> Result<TagFilter> {
        let Some(filter) = filter else {
            return Ok(TagFilter::All);
        };
        match Kind::try_from(filter.kind) {
            Ok(Kind::Tag) => {}
            Ok(Kind::Sql92) => {
                return Err(StoreError::IllegalFilter {
                    reason:
                        "SQL92 filter expressions are not supported by Pier yet; use a TAG filter"
                            .into(),
                })
            }
            Err(_) => {
                return Err(StoreError::IllegalFilter {
                    reason: format!("unknown filter kind {}", filter.kind),
                })
            }
        }
        let expr = filter.expression.trim();
        if expr.is_empty() || expr == "*" {
            return Ok(TagFilter::All);
        }
        let tags: Vec<String> = expr
            .split("||")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect();
        if tags.is_empty() {
            return Err(StoreError::IllegalFilter {
                reason: format!("tag expression {expr:?} names no tag"),
            });
        }
        if tags.iter().any(|t| t == "*") {
            return Ok(TagFilter::All);
        }
        Ok(TagFilter::AnyOf(tags))
    }

    /// Returns true when a message with this tag passes.
    pub(crate) fn matches(&self, tag: Option<&str>) -> bool {
        match self {
            TagFilter::All => true,
            TagFilter::AnyOf(tags) => tag.is_some_and(|t| tags.iter().any(|x| x == t)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(expr: &str) -> Filter {
        Filter {
            kind: Kind::Tag as i32,
            expression: expr.into(),
        }
    }

    #[test]
    fn star_and_empty_match_all() {
        for e in ["", "*", "  * "] {
            let f = TagFilter::parse(Some(&tag(e))).unwrap();
            assert!(f.matches(None));
            assert!(f.matches(Some("x")));
        }
    }

    #[test]
    fn alternatives() {
        let f = TagFilter::parse(Some(&tag("a || b||"))).unwrap();
        assert!(f.matches(Some("a")));
        assert!(f.matches(Some("b")));
        assert!(!f.matches(Some("c")));
        assert!(!f.matches(None));
    }

    #[test]
    fn sql_is_refused() {
        let f = Filter {
            kind: Kind::Sql92 as i32,
            expression: "a > 1".into(),
        };
        assert!(matches!(
            TagFilter::parse(Some(&f)),
            Err(StoreError::IllegalFilter { .. })
        ));
        assert!(TagFilter::parse(Some(&tag("||"))).is_err());
    }
}
