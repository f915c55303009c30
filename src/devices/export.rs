//! The device list as CSV, for spreadsheets and other inventories.

use time::format_description::well_known::Rfc3339;

/// One device as the export sees it.
pub struct Row<'a> {
    pub id: i64,
    pub hostname: &'a str,
    pub mgmt_ip: String,
    pub port: i32,
    pub vendor: &'a str,
    pub platform: &'a str,
    pub role: &'a str,
    pub site: &'a str,
    pub tags: &'a [String],
    pub enabled: bool,
    /// The region's identifier.
    pub region: Option<&'a str>,
    pub credential: Option<i64>,
    pub reachability: &'static str,
    pub last_reachability_check: Option<time::OffsetDateTime>,
    pub updated_at: time::OffsetDateTime,
}

/// The export's columns, in order.
pub const CSV_COLUMNS: [&str; 15] = [
    "id",
    "hostname",
    "mgmt_ip",
    "port",
    "vendor",
    "platform",
    "role",
    "site",
    "tags",
    "enabled",
    "region",
    "credential",
    "reachability",
    "last_reachability_check",
    "updated_at",
];

/// Writes devices as CSV rows into a buffer the caller drains as it fills: the export is
/// streamed, so a million devices never sit in memory at once.
pub struct CsvRows {
    writer: csv::Writer<Vec<u8>>,
}

impl Default for CsvRows {
    fn default() -> Self {
        Self::new()
    }
}

impl CsvRows {
    /// A buffer holding the header row.
    pub fn new() -> Self {
        let mut writer = writer();
        // Writing to a Vec cannot fail.
        let _ = writer.write_record(CSV_COLUMNS);
        Self { writer }
    }

    /// Appends one device.
    pub fn push(&mut self, d: Row<'_>) {
        let time = |t: Option<time::OffsetDateTime>| {
            t.and_then(|t| t.format(&Rfc3339).ok()).unwrap_or_default()
        };
        let record = [
            d.id.to_string(),
            cell(d.hostname),
            d.mgmt_ip,
            d.port.to_string(),
            cell(d.vendor),
            cell(d.platform),
            cell(d.role),
            cell(d.site),
            // Tags cannot hold spaces, so a space separates them, as in the device form.
            cell(&d.tags.join(" ")),
            d.enabled.to_string(),
            d.region.unwrap_or_default().to_string(),
            d.credential.map(|c| c.to_string()).unwrap_or_default(),
            d.reachability.to_string(),
            time(d.last_reachability_check),
            time(Some(d.updated_at)),
        ];
        let _ = self.writer.write_record(&record);
    }

    /// How many bytes are waiting (at least; the writer keeps a small buffer of its own).
    pub fn len(&self) -> usize {
        self.writer.get_ref().len()
    }

    /// Takes the bytes written so far.
    pub fn take(&mut self) -> Vec<u8> {
        let writer = std::mem::replace(&mut self.writer, writer());
        writer.into_inner().unwrap_or_default()
    }
}

fn writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::with_capacity(40 * 1024))
}

/// A free-text value as a cell. A value that a spreadsheet would read as a formula (one
/// starting with `=`, `+`, `-`, `@`, a tab or a carriage return) is prefixed with `'`, as
/// OWASP advises against CSV injection: a device's site or role is typed by any admin, but
/// the export is opened by whoever is sent it.
fn cell(value: &str) -> String {
    match value.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{value}"),
        _ => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_like_values_are_defused_and_others_kept() {
        assert_eq!(cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(cell("@sum"), "'@sum");
        assert_eq!(cell("-1"), "'-1");
        assert_eq!(cell("par1"), "par1");
        assert_eq!(cell(""), "");
    }

    #[test]
    fn the_buffer_starts_with_the_header_and_empties_when_taken() {
        let mut rows = CsvRows::new();
        let header = String::from_utf8(rows.take()).unwrap();
        assert_eq!(header, format!("{}\r\n", CSV_COLUMNS.join(",")));
        assert_eq!(rows.len(), 0);
    }
}
