//! Consumer groups: their settings and ids.

use std::sync::Arc;

use pier_proto::admin::ConsumerGroup;

use super::rules::normalize_group;
use super::Catalog;
use crate::db::keys;
use crate::error::{Result, StoreError};

/// A consumer group and its id.
#[derive(Debug, Clone)]
pub(crate) struct GroupEntry {
    pub(crate) id: u32,
    pub(crate) group: ConsumerGroup,
}

impl Catalog {
    /// Creates a group; `Ok((entry, false))` when an identical one exists.
    pub(crate) fn create_group(&self, group: ConsumerGroup) -> Result<(Arc<GroupEntry>, bool)> {
        let mut group = normalize_group(group)?;
        let mut groups = self.groups.entries.write();
        if let Some(old) = groups.get(&group.name) {
            let same = old.group.fifo == group.fifo
                && old.group.max_attempts == group.max_attempts
                && (group.retry_policy.is_none() || old.group.retry_policy == group.retry_policy);
            if same {
                return Ok((old.clone(), false));
            }
            let existing = format!(
                "fifo {}, max attempts {}",
                old.group.fifo, old.group.max_attempts
            );
            return Err(StoreError::already_exists(
                "consumer group",
                group.name,
                existing,
            ));
        }
        let (id, now) = self.next();
        group.created_at_ms = now;
        self.put_meta(keys::meta_group_key(&group.name), id, &group)?;
        let entry = Arc::new(GroupEntry { id, group });
        groups.insert(entry.group.name.clone(), entry.clone());
        tracing::info!(group = %entry.group.name, fifo = entry.group.fifo, max_attempts = entry.group.max_attempts, "consumer group created");
        Ok((entry, true))
    }

    /// Replaces a group's settings (a missing retry policy keeps the old one).
    pub(crate) fn update_group(&self, group: ConsumerGroup) -> Result<Arc<GroupEntry>> {
        let mut updated = normalize_group(group)?;
        let (mut groups, old) = self.groups.existing(&updated.name)?;
        updated.created_at_ms = old.group.created_at_ms;
        if updated.retry_policy.is_none() {
            updated.retry_policy = old.group.retry_policy.clone();
        }
        self.put_meta(keys::meta_group_key(&updated.name), old.id, &updated)?;
        let entry = Arc::new(GroupEntry {
            id: old.id,
            group: updated,
        });
        groups.insert(entry.group.name.clone(), entry.clone());
        Ok(entry)
    }

    /// Removes a group (its consumption state is the caller's to remove).
    pub(crate) fn delete_group(&self, name: &str) -> Result<Arc<GroupEntry>> {
        let (mut groups, old) = self.groups.existing(name)?;
        self.delete_meta(keys::meta_group_key(name), |_| {})?;
        groups.remove(name);
        tracing::info!(group = %name, "consumer group deleted");
        Ok(old)
    }
}
