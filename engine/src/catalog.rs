//! Table metadata from the Postgres catalog: what a shape definition is checked against, what the
//! `electric-schema` header describes, and how the snapshot query is built.

use crate::pg::{Connection, PgError};
use protocol::ident::quote_ident;
use protocol::schema::ColumnInfo;

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

impl TableInfo {
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.info.name == name)
    }

    /// `"schema"."table"`, for SQL.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

/// SQL literal quoting for values we interpolate into catalog queries (names only).
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Looks a table up; `Ok(None)` when it does not exist.
pub async fn load_table(
    conn: &mut Connection,
    schema: &str,
    name: &str,
) -> Result<Option<TableInfo>, PgError> {
    // One round trip: columns with their element type, dims, nullability, typmod, PK position,
    // generated flag. attndims is unreliable for arrays declared without dimensions, so an
    // array column reports at least 1.
    let sql = format!(
        "SELECT c.oid, a.attname, \
                CASE WHEN t.typcategory = 'A' THEN et.typname ELSE t.typname END, \
                CASE WHEN t.typcategory = 'A' THEN greatest(a.attndims, 1) ELSE 0 END, \
                a.attnotnull, a.atttypmod, \
                array_position(i.indkey::int2[], a.attnum), \
                a.attgenerated <> '', a.atttypid, \
                (CASE WHEN t.typcategory = 'A' THEN et.typtype ELSE t.typtype END) = 'e' \
         FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
         JOIN pg_type t ON t.oid = a.atttypid \
         LEFT JOIN pg_type et ON et.oid = t.typelem AND t.typcategory = 'A' \
         LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary \
         WHERE n.nspname = {} AND c.relname = {} AND c.relkind IN ('r', 'p') \
         ORDER BY a.attnum",
        quote_literal(schema),
        quote_literal(name)
    );
    let results = conn.simple_query(&sql).await?;
    let mut table: Option<TableInfo> = None;
    let mut pk: Vec<(i64, usize)> = Vec::new();
    for res in &results {
        for row in res.rows() {
            let field = |i: usize| row.get(i).unwrap_or("");
            let oid: u32 = field(0).parse().unwrap_or(0);
            let t = table.get_or_insert_with(|| TableInfo {
                oid,
                schema: schema.to_string(),
                name: name.to_string(),
                columns: Vec::new(),
                pk: Vec::new(),
                generated: Vec::new(),
            });
            let col_name = field(1).to_string();
            if field(7) == "t" {
                t.generated.push(col_name);
                continue;
            }
            let dims: i32 = field(3).parse().unwrap_or(0);
            let pk_pos: Option<i64> = row.get(6).and_then(|p| p.parse().ok());
            let idx = t.columns.len();
            if let Some(p) = pk_pos {
                pk.push((p, idx));
            }
            t.columns.push(TableColumn {
                info: ColumnInfo {
                    name: col_name,
                    type_name: field(2).to_string(),
                    dims,
                    is_array: dims > 0,
                    // array_position is 1-based; pk_index is 0-based.
                    pk_index: pk_pos.map(|p| (p - 1) as u32),
                    not_null: field(4) == "t",
                    type_mod: field(5).parse().unwrap_or(-1),
                },
                type_oid: field(8).parse().unwrap_or(0),
                is_enum: field(9) == "t",
            });
        }
    }
    if let Some(t) = table.as_mut() {
        pk.sort();
        t.pk = pk.into_iter().map(|(_, i)| i).collect();
    }
    Ok(table)
}
