//! Rendering shared by the commands: text or JSON output, aligned fields
//! and tables, times and durations. Pure functions, so they can be tested.

use serde_json::{json, Value};

/// Prints `value` (with `--json`) or `text`.
pub(crate) fn emit(json: bool, text: &str, value: &Value) {
    if json {
        println!("{value}");
    } else if !text.is_empty() {
        println!("{}", text.trim_end());
    }
}

/// `yes` or `no`.
pub(crate) fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// What a delete prints: `deleted <what> <name>`, or `{"deleted": name}`.
pub(crate) fn deleted(what: &str, name: &str) -> (String, Value) {
    (format!("deleted {what} {name}"), json!({ "deleted": name }))
}

/// What a create prints: `created <kind> <name> (<what>)`, or that it
/// already existed; `{"created": bool, "<kind>": value}`.
pub(crate) fn created(
    kind: &str,
    name: &str,
    created: bool,
    what: &str,
    value: Value,
) -> (String, Value) {
    let text = if created {
        format!("created {kind} {name} ({what})")
    } else {
        format!("{kind} {name} already exists ({what})")
    };
    let mut object = serde_json::Map::new();
    object.insert("created".into(), created.into());
    object.insert(kind.into(), value);
    (text, Value::Object(object))
}

/// What a list prints: a table with a row per item (`row` gives its
/// cells), or `no <plural>`; `{"<plural>": [to_json(item), ...]}`.
pub(crate) fn listing<T>(
    plural: &str,
    items: &[T],
    to_json: impl Fn(&T) -> Value,
    header: &[&str],
    row: impl Fn(&T) -> Vec<String>,
) -> (String, Value) {
    let mut object = serde_json::Map::new();
    object.insert(plural.into(), items.iter().map(to_json).collect());
    let value = Value::Object(object);
    if items.is_empty() {
        return (format!("no {plural}"), value);
    }
    (table_of(header, items, row), value)
}

/// `1500ms`, `3s`, `5m`, `2h`: the largest unit that divides `ms` exactly.
pub(crate) fn format_ms(ms: u64) -> String {
    match ms {
        0 => "0s".into(),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1_000 == 0 => format!("{}s", ms / 1_000),
        ms => format!("{ms}ms"),
    }
}

/// Milliseconds since the epoch as RFC 3339 UTC (`-` for 0, i.e. unset).
pub(crate) fn format_time(ms: u64) -> String {
    if ms == 0 {
        return "-".into();
    }
    pier::time::format_rfc3339_millis(ms)
}

/// `label:  value` lines with the values aligned.
pub(crate) fn fields(items: &[(&str, String)]) -> String {
    let width = items.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    items
        .iter()
        .map(|(k, v)| format!("{:<width$}  {v}\n", format!("{k}:")))
        .collect()
}

/// A [`table`] with a row per item, whose cells `row` gives.
pub(crate) fn table_of<T>(header: &[&str], items: &[T], row: impl Fn(&T) -> Vec<String>) -> String {
    let rows: Vec<Vec<String>> = items.iter().map(row).collect();
    table(header, &rows)
}

/// A left-aligned table with a header row; columns separated by two spaces.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            s.push_str(cell);
            let pad = w.saturating_sub(cell.chars().count());
            s.extend(std::iter::repeat_n(' ', pad));
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_durations() {
        // 0 means unset; other values are dates (pier::time tests the calendar).
        assert_eq!(format_time(0), "-");
        assert_eq!(format_time(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(format_ms(0), "0s");
        assert_eq!(format_ms(1_500), "1500ms");
        assert_eq!(format_ms(3_000), "3s");
        assert_eq!(format_ms(300_000), "5m");
        assert_eq!(format_ms(7_200_000), "2h");
    }

    #[test]
    fn tables_and_fields_align() {
        let t = table(&["A", "LONG"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "A    LONG\nxyz  1\n");
        assert_eq!(
            fields(&[("a", "1".into()), ("bcd", "2".into())]),
            "a:    1\nbcd:  2\n"
        );
        assert_eq!(yes_no(true), "yes");
    }
}
