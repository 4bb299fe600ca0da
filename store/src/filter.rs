//! Subscription filters, evaluated in the store so that filtered-out messages
//! never cross the network.

use crate::error::{Result, StoreError};
use pier_proto::store::{filter::Kind, Filter};

/// Longest tag expression a subscription may have. A filter is parsed for
/// every pop and matched against every message a pop scans, so its size is
/// bounded like anything else a client hands the server; a few hundred
/// alternatives of ordinary tags fit.
pub(crate) const MAX_EXPRESSION_BYTES: usize = 16 * 1024;

/// A parsed filter. Tag rules follow RocketMQ's `FilterAPI`: `""` or `"*"`
/// match everything; otherwise the expression is split on `||`, parts are
/// trimmed, empty parts ignored, and a message matches when its tag equals
/// one part (a message without a tag matches only `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TagFilter {
    /// Every message.
    All,
    /// Messages with one of these tags (sorted, without repeats).
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
        if filter.expression.len() > MAX_EXPRESSION_BYTES {
            return Err(StoreError::IllegalFilter {
                reason: format!(
                    "the tag expression is {} bytes long; the limit is {MAX_EXPRESSION_BYTES}",
                    filter.expression.len()
                ),
            });
        }
        let expr = filter.expression.trim();
        if expr.is_empty() || expr == "*" {
            return Ok(TagFilter::All);
        }
        let mut tags: Vec<String> = expr
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
        tags.sort_unstable();
        tags.dedup();
        Ok(TagFilter::AnyOf(tags))
    }

    /// Returns true when a message with this tag passes.
    pub(crate) fn matches(&self, tag: Option<&str>) -> bool {
        match self {
            TagFilter::All => true,
            TagFilter::AnyOf(tags) => {
                tag.is_some_and(|t| tags.binary_search_by(|x| x.as_str().cmp(t)).is_ok())
            }
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

    #[test]
    fn many_alternatives_match_and_an_oversized_expression_is_refused() {
        let tags: Vec<String> = (0..2_000).rev().map(|i| format!("t{i}")).collect();
        let expr = tags.join("||");
        assert!(expr.len() <= MAX_EXPRESSION_BYTES);
        let f = TagFilter::parse(Some(&tag(&expr))).unwrap();
        for t in &tags {
            assert!(f.matches(Some(t)), "{t}");
        }
        assert!(!f.matches(Some("t2000")));
        assert!(!f.matches(Some("t")));
        let twice = TagFilter::parse(Some(&tag("b||a||b"))).unwrap();
        assert_eq!(twice, TagFilter::AnyOf(vec!["a".into(), "b".into()]));

        let long = "a||".repeat(MAX_EXPRESSION_BYTES / 3 + 1);
        assert!(matches!(
            TagFilter::parse(Some(&tag(&long))),
            Err(StoreError::IllegalFilter { .. })
        ));
    }
}
