//! Table metadata from the Postgres catalog: what a shape definition is checked against, what the
//! `electric-schema` header describes, and how the snapshot query is built.

use crate::pg::{Connection, PgError};
use protocol::ident::quote_ident;
use protocol::schema::{columns_query_for_table, parse_column_row, ColumnInfo, TypeKind};

/// A table as the catalog describes it, columns in attribute order (dropped and generated
/// columns excluded, matching what pgoutput publishes on Postgres 15).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableInfo {
    pub oid: u32,
    pub schema: String,
    pub name: String,
    pub columns: Vec<TableColumn>,
    /// Indexes into `columns` of the primary key, in key order. Empty for PK-less tables.
    pub pk: Vec<usize>,
    /// Names of generated columns (not selectable on Postgres < 18).
    pub generated: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableColumn {
    pub info: ColumnInfo,
    pub type_oid: u32,
    pub is_enum: bool,
}

impl TableColumn {
    /// The column as the WHERE front end types it.
    pub fn where_type(&self) -> protocol::where_clause::ColumnType {
        protocol::where_clause::ColumnType {
            name: self.info.name.clone(),
            type_name: self.info.type_name.clone(),
            is_array: self.info.is_array,
            is_enum: self.is_enum,
        }
    }
}

impl TableInfo {
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.info.name == name)
    }

    /// `"schema"."table"`, for SQL.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

/// SQL literal quoting for values we interpolate into catalog queries (names only). A name
/// with a backslash becomes an escape string (`E'…'`), whose meaning does not depend on the
/// server's `standard_conforming_strings` (off, a plain literal would let `\'` end it).
pub fn quote_literal(s: &str) -> String {
    if s.contains('\\') {
        format!("E'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// Looks a table up; `Ok(None)` when it does not exist.
pub async fn load_table(
    conn: &mut Connection,
    schema: &str,
    name: &str,
) -> Result<Option<TableInfo>, PgError> {
    let columns_sql = columns_query_for_table(schema, name)
        .ok_or_else(|| PgError::InvalidArgument("table name contains NUL".into()))?;
    // One round trip: the oid, then the columns (upstream's inspector query).
    let sql = format!(
        "SELECT c.oid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n \
           ON n.oid = c.relnamespace \
         WHERE n.nspname = {} AND c.relname = {} AND c.relkind IN ('r', 'p'); {columns_sql}",
        quote_literal(schema),
        quote_literal(name)
    );
    let results = conn.simple_query(&sql).await?;
    let [oid_res, cols_res] = results.as_slice() else {
        return Err(PgError::Protocol(format!(
            "catalog query returned {} results",
            results.len()
        )));
    };
    let Some(oid) = oid_res.rows.first().and_then(|r| r.get(0)) else {
        return Ok(None);
    };
    let oid: u32 = oid
        .parse()
        .map_err(|_| PgError::Protocol(format!("bad oid {oid:?}")))?;
    let mut t = TableInfo {
        oid,
        schema: schema.to_string(),
        name: name.to_string(),
        columns: Vec::new(),
        pk: Vec::new(),
        generated: Vec::new(),
    };
    let mut pk: Vec<(u32, usize)> = Vec::new();
    for row in &cols_res.rows {
        let fields: Vec<Option<&str>> = (0..row.len()).map(|i| row.get(i)).collect();
        let info = parse_column_row(&fields)
            .map_err(|e| PgError::Protocol(format!("catalog row: {e}")))?;
        if info.is_generated {
            // Postgres 15 does not publish generated columns, so they cannot be in a shape.
            t.generated.push(info.name);
            continue;
        }
        if let Some(p) = info.pk_index {
            pk.push((p, t.columns.len()));
        }
        let is_enum = info.element_kind.unwrap_or(info.type_kind) == TypeKind::Enum;
        t.columns.push(TableColumn {
            type_oid: info.type_oid,
            is_enum,
            info,
        });
    }
    pk.sort_unstable();
    t.pk = pk.into_iter().map(|(_, i)| i).collect();
    Ok(Some(t))
}

#[cfg(test)]
mod quote_tests {
    #[test]
    fn literals_are_safe_whatever_standard_conforming_strings() {
        assert_eq!(super::quote_literal("it's"), "'it''s'");
        // With standard_conforming_strings off, a plain literal would end at the `\'`.
        assert_eq!(super::quote_literal(r"a\' ;--"), r"E'a\\'' ;--'");
    }
}
