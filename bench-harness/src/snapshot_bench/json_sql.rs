//! The upstream way of reading a snapshot, rebuilt for comparison: each row's whole JSON message
//! built in SQL by string concatenation (`'{' || '"key":' || … || '}'`), key and values through
//! `to_json(col::text)`, as Electric's `Querying.json_like_select` does.

use engine::catalog::quote_literal;
use engine::shapes::def::ShapeDef;
use protocol::ident::quote_ident;

/// `SELECT <one JSON text per row> FROM table [WHERE …]` for `def`.
pub fn json_select(def: &ShapeDef) -> String {
    let table = &def.table;
    let relation_json = format!(
        "[{},{}]",
        json_string_literal(&table.schema),
        json_string_literal(&table.name)
    );
    // Key: "schema"."table"/"pk1"/… with `/` doubled in values, as a JSON string.
    let mut key = format!(
        "'\"{}\".\"{}\"'",
        sql_escape(&double(&table.schema, &['/', '.'])),
        sql_escape(&double(&table.name, &['/', '.']))
    );
    for &col in &def.key_cols {
        let name = quote_ident(&table.columns[col].info.name);
        key.push_str(&format!(
            " || '/' || coalesce('\"' || replace({name}::text, '/', '//') || '\"', '_')"
        ));
    }
    let values: Vec<String> = def
        .selected
        .iter()
        .map(|&col| {
            let name = &table.columns[col].info.name;
            format!(
                "{} || coalesce(to_json({}::text)::text, 'null')",
                quote_literal(&format!("{}:", json_string_literal(name))),
                quote_ident(name)
            )
        })
        .collect();
    let headers = format!("\"headers\":{{\"operation\":\"insert\",\"relation\":{relation_json}}}");
    let mut sql = format!(
        "SELECT '{{' || '\"key\":' || to_json({key})::text || ',' || '\"value\":{{' || {} || '}},' || {} || '}}' FROM {}",
        values.join(" || ',' || "),
        quote_literal(&headers),
        table.quoted()
    );
    if let Some(w) = &def.where_sql {
        sql.push_str(" WHERE ");
        sql.push_str(w);
    }
    sql
}

/// A JSON string for an identifier (quotes and backslashes escaped).
fn json_string_literal(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Doubles each of `chars` (the key's escaping of schema and table names).
fn double(s: &str, chars: &[char]) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        out.push(c);
        if chars.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// Escapes text for inside a standard SQL string literal.
fn sql_escape(s: &str) -> String {
    s.replace('\'', "''")
}
