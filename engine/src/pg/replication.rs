//! Replication-protocol commands on a `replication=database` connection.

use pgwire::frame::BackendMessage;
use pgwire::types::Lsn;

use super::connection::Connection;
use super::error::PgError;
use super::query::SimpleRow;
use super::stream::{ReplicationStream, StreamSettings};

/// The result of IDENTIFY_SYSTEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemInfo {
    pub systemid: String,
    pub timeline: u32,
    /// The current WAL flush position.
    pub xlogpos: Lsn,
    /// The database of a `replication=database` connection.
    pub dbname: Option<String>,
}

/// The result of CREATE_REPLICATION_SLOT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotInfo {
    pub slot_name: String,
    /// Changes committed after this position will be streamed from the slot.
    pub consistent_point: Lsn,
    pub snapshot_name: Option<String>,
    pub output_plugin: Option<String>,
}

/// `"name"` for a replication command. Unlike SQL, the replication grammar of Postgres 15 has
/// no escape for `"` inside a quoted identifier (doubling it is a syntax error), so names
/// containing `"` or NUL are refused. Slot names are limited to `[a-z0-9_]` anyway.
pub fn quote_replication_identifier(name: &str) -> Result<String, PgError> {
    if name.contains(['"', '\0']) {
        return Err(PgError::InvalidArgument(format!(
            "replication command identifiers cannot contain '\"' or NUL: {name:?}"
        )));
    }
    Ok(format!("\"{name}\""))
}

/// `'value'` for a replication command, with embedded quotes doubled. The replication grammar
/// has no backslash escapes, so doubling quotes is all the quoting it needs.
pub fn quote_replication_literal(value: &str) -> Result<String, PgError> {
    if value.contains('\0') {
        return Err(PgError::InvalidArgument(
            "literal contains a NUL byte".into(),
        ));
    }
    Ok(format!("'{}'", value.replace('\'', "''")))
}

/// Builds `START_REPLICATION SLOT "slot" LOGICAL X/Y ("name" 'value', ...)`.
pub fn start_replication_command(
    slot: &str,
    start: Lsn,
    options: &[(&str, &str)],
) -> Result<String, PgError> {
    let mut sql = format!(
        "START_REPLICATION SLOT {} LOGICAL {start}",
        quote_replication_identifier(slot)?
    );
    if !options.is_empty() {
        let mut parts = Vec::with_capacity(options.len());
        for (name, value) in options {
            parts.push(format!(
                "{} {}",
                quote_replication_identifier(name)?,
                quote_replication_literal(value)?
            ));
        }
        sql.push_str(&format!(" ({})", parts.join(", ")));
    }
    Ok(sql)
}

fn column<'a>(row: &'a SimpleRow, name: &str) -> Result<&'a str, PgError> {
    row.get_by_name(name)
        .ok_or_else(|| PgError::protocol(format!("reply lacks column {name:?}")))
}

fn lsn_column(row: &SimpleRow, name: &str) -> Result<Lsn, PgError> {
    let text = column(row, name)?;
    text.parse()
        .map_err(|_| PgError::protocol(format!("column {name:?} is not an LSN: {text:?}")))
}

impl Connection {
    /// Runs a replication command expected to return exactly one row.
    async fn single_row(&mut self, command: &str) -> Result<SimpleRow, PgError> {
        let results = self.simple_query(command).await?;
        let mut rows = results.into_iter().flat_map(|r| r.rows);
        match (rows.next(), rows.next()) {
            (Some(row), None) => Ok(row),
            _ => Err(PgError::protocol(format!(
                "{command} did not return one row"
            ))),
        }
    }

    /// IDENTIFY_SYSTEM: the cluster id, timeline and current WAL position.
    pub async fn identify_system(&mut self) -> Result<SystemInfo, PgError> {
        let row = self.single_row("IDENTIFY_SYSTEM").await?;
        let timeline = column(&row, "timeline")?;
        Ok(SystemInfo {
            systemid: column(&row, "systemid")?.to_string(),
            timeline: timeline
                .parse()
                .map_err(|_| PgError::protocol(format!("bad timeline {timeline:?}")))?,
            xlogpos: lsn_column(&row, "xlogpos")?,
            dbname: row.get_by_name("dbname").map(str::to_string),
        })
    }

    /// Creates a logical slot using the `pgoutput` plugin, without exporting a snapshot.
    pub async fn create_logical_slot(
        &mut self,
        name: &str,
        temporary: bool,
    ) -> Result<SlotInfo, PgError> {
        let command = format!(
            "CREATE_REPLICATION_SLOT {}{} LOGICAL pgoutput NOEXPORT_SNAPSHOT",
            quote_replication_identifier(name)?,
            if temporary { " TEMPORARY" } else { "" }
        );
        let row = self.single_row(&command).await?;
        Ok(SlotInfo {
            slot_name: column(&row, "slot_name")?.to_string(),
            consistent_point: lsn_column(&row, "consistent_point")?,
            snapshot_name: row.get_by_name("snapshot_name").map(str::to_string),
            output_plugin: row.get_by_name("output_plugin").map(str::to_string),
        })
    }

    /// Starts logical replication from `slot` at `start` with default [`StreamSettings`].
    /// `options` go to the output plugin, e.g. `[("proto_version", "1"),
    /// ("publication_names", "my_pub")]`.
    pub async fn start_replication(
        self,
        slot: &str,
        start: Lsn,
        options: &[(&str, &str)],
    ) -> Result<ReplicationStream, PgError> {
        self.start_replication_with(slot, start, options, StreamSettings::default())
            .await
    }

    /// Like [`Self::start_replication`], with explicit stream settings.
    pub async fn start_replication_with(
        mut self,
        slot: &str,
        start: Lsn,
        options: &[(&str, &str)],
        settings: StreamSettings,
    ) -> Result<ReplicationStream, PgError> {
        let command = start_replication_command(slot, start, options)?;
        self.send_query(&command).await?;
        let mut failure = None;
        loop {
            match self.recv().await? {
                BackendMessage::CopyBothResponse(_) if failure.is_none() => {
                    return Ok(ReplicationStream::start(self, start, settings));
                }
                BackendMessage::ErrorResponse(fields) => failure = Some(PgError::Db(fields)),
                BackendMessage::ReadyForQuery(_) if failure.is_some() => {
                    return Err(failure.unwrap_or(PgError::Closed));
                }
                other => {
                    let msg = format!("unexpected reply to START_REPLICATION: {other:?}");
                    return Err(PgError::Protocol(msg));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_start_replication_with_quoted_options() {
        let sql = start_replication_command(
            "slot_1",
            Lsn(0x1_0000_00AB),
            &[("proto_version", "1"), ("publication_names", "it's")],
        )
        .unwrap();
        assert_eq!(
            sql,
            "START_REPLICATION SLOT \"slot_1\" LOGICAL 1/AB \
             (\"proto_version\" '1', \"publication_names\" 'it''s')"
        );
        let bare = start_replication_command("s", Lsn(0), &[]).unwrap();
        assert_eq!(bare, "START_REPLICATION SLOT \"s\" LOGICAL 0/0");
        assert!(start_replication_command("a\"b", Lsn(0), &[]).is_err());
        assert!(start_replication_command("s", Lsn(0), &[("k", "v\0")]).is_err());
    }
}
