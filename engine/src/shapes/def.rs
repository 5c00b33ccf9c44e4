//! Shape definitions: what a request asks for, checked against the table, in canonical form.
//!
//! Two requests that mean the same shape produce the same canonical string, hence the same hash,
//! the same owning core and the same handle.

use crate::catalog::{TableColumn, TableInfo};
use protocol::ident::QualifiedTable;
use protocol::request::{DeleteQuery, LogMode, ParamsError, Replica, ShapeQuery};
use protocol::validation::{self as v, ValidationErrors};
use protocol::where_clause::{self, ColumnType, Predicate};

/// The parts of a request that define a shape (GET and DELETE share them).
pub struct DefParams<'q> {
    pub table: &'q QualifiedTable,
    pub where_clause: Option<&'q str>,
    pub params: &'q [String],
    pub params_error: Option<ParamsError>,
    pub columns: Option<&'q [String]>,
    pub replica: Replica,
    pub log: LogMode,
}

impl<'q> DefParams<'q> {
    pub fn of_shape(q: &'q ShapeQuery) -> Option<Self> {
        Some(Self {
            table: q.table.as_ref()?,
            where_clause: q.where_clause.as_deref(),
            params: &q.params,
            params_error: q.params_error,
            columns: q.columns.as_deref(),
            replica: q.replica,
            log: q.log,
        })
    }

    pub fn of_delete(q: &'q DeleteQuery) -> Option<Self> {
        Some(Self {
            table: q.table.as_ref()?,
            where_clause: q.where_clause.as_deref(),
            params: &q.params,
            params_error: q.params_error,
            columns: q.columns.as_deref(),
            replica: q.replica,
            log: q.log,
        })
    }
}
use super::subquery::{DepDef, SubqueryDef};
use std::sync::Arc;

/// Resolves a subquery's table (`schema`, `name`) from the catalog.
pub type SubqueryTables<'a> = dyn Fn(&str, &str) -> Option<Arc<TableInfo>> + 'a;

/// Plans a clause with subqueries: upstream's checks on the DNF, then one dependency per
/// subquery, nested ones planned the same way.
fn subquery_def(
    p: &Predicate,
    on: &TableInfo,
    tables: &SubqueryTables<'_>,
) -> Result<SubqueryDef, ValidationErrors> {
    let plan = p.plan().map_err(|e| v::where_error(e.to_string()))?;
    let mut deps = Vec::with_capacity(p.subqueries().len());
    for sub in p.subqueries() {
        let table = tables(&sub.schema, &sub.table).ok_or_else(|| {
            v::where_error(format!("table {}.{} disappeared", sub.schema, sub.table))
        })?;
        let nested = match &sub.predicate {
            Some(inner) if !inner.subqueries().is_empty() => {
                Some(Arc::new(subquery_def(inner, &table, tables)?))
            }
            _ => None,
        };
        deps.push(Arc::new(DepDef {
            canon: super::subquery::Canon::of_table(&table),
            key: format!("{}|{}", table.oid, sub.sql),
            table,
            columns: sub.columns.clone(),
            predicate: sub.predicate.clone(),
            sql: sub.sql.clone(),
            nested,
        }));
    }
    let routing = p.routing_superset(&plan);
    Ok(SubqueryDef {
        plan,
        deps,
        routing,
        canon: super::subquery::Canon::of_table(on),
    })
}

#[derive(Debug)]
pub struct ShapeDef {
    pub table: Arc<TableInfo>,
    /// Selected column indexes into `table.columns`, in table order.
    pub selected: Vec<usize>,
    pub predicate: Option<Predicate>,
    /// The subqueries of the WHERE, planned (`None` without any).
    pub subquery: Option<Arc<SubqueryDef>>,
    /// Normalized WHERE (params inlined), for the snapshot query and identity.
    pub where_sql: Option<String>,
    pub replica: Replica,
    pub log: LogMode,
    /// Key columns: the PK, or every column sorted by name for PK-less tables.
    pub key_cols: Vec<usize>,
    /// `queryable_columns` of the request this definition was built for, as indexes into
    /// `table.columns` in table order: the columns a subset's `where`/`order_by` may use
    /// (`None`: all of them). Not part of `canonical`.
    pub queryable: Option<Vec<usize>>,
    pub canonical: String,
    pub hash: u32,
    /// Identifies (table, selected columns) for sharing encoded entries between shapes.
    pub projection_hash: u64,
    /// The `electric-schema` header value, rendered once.
    pub schema_header: String,
    /// The WHERE clause and params as requested (stored, so a restart rebuilds the same shape).
    pub where_raw: Option<String>,
    pub params_raw: Vec<String>,
}

impl ShapeDef {
    /// Whether two definitions are the same shape definition (the same `Arc`, or equal
    /// canonical forms).
    pub fn same(a: &Arc<ShapeDef>, b: &Arc<ShapeDef>) -> bool {
        Arc::ptr_eq(a, b) || (a.hash == b.hash && a.canonical == b.canonical)
    }

    /// Checks a parsed request against the table and builds the canonical definition.
    pub fn build(q: &DefParams<'_>, table: Arc<TableInfo>) -> Result<Self, ValidationErrors> {
        Self::build_with_queryable(q, None, table)
    }

    /// [`ShapeDef::build`] for a request that may carry `queryable_columns`. That list is
    /// checked first (upstream's order), bounds the `columns` a request may select, becomes
    /// the projection when `columns` is absent, and is kept for subset validation. It is not
    /// part of the shape's identity: two requests selecting the same columns share a shape
    /// whatever their allow-lists (upstream's `Shape.comparable/1` leaves it out too).
    pub fn build_with_queryable(
        q: &DefParams<'_>,
        queryable: Option<&[String]>,
        table: Arc<TableInfo>,
    ) -> Result<Self, ValidationErrors> {
        Self::build_full(q, queryable, table, None)
    }

    /// [`ShapeDef::build_with_queryable`] with subqueries allowed: `tables` resolves the
    /// tables they read (`None` for one that does not exist).
    pub fn build_full(
        q: &DefParams<'_>,
        queryable: Option<&[String]>,
        table: Arc<TableInfo>,
        tables: Option<&SubqueryTables<'_>>,
    ) -> Result<Self, ValidationErrors> {
        let queryable = match queryable {
            None => None,
            Some(names) => Some(check_queryable(&table, names)?),
        };
        let selected = select_columns(&table, q.columns, queryable.as_deref())?;
        let queryable_idx = queryable.map(|names| {
            // Generated columns have no entry in `table.columns` (they cannot be read on the
            // Postgres versions that cannot publish them), so they drop out here.
            let mut idx: Vec<usize> = names
                .iter()
                .filter_map(|name| table.column_index(name))
                .collect();
            idx.sort_unstable();
            idx
        });
        let (predicate, where_sql) = match q.where_clause {
            None => (None, None),
            Some(w) => {
                let cols: Vec<ColumnType> =
                    table.columns.iter().map(TableColumn::where_type).collect();
                let columns_of = |schema: &str, name: &str| {
                    let found = tables.and_then(|t| t(schema, name))?;
                    Some(found.columns.iter().map(TableColumn::where_type).collect())
                };
                let lookup: Option<&where_clause::Tables<'_>> =
                    tables.map(|_| &columns_of as &where_clause::Tables<'_>);
                let p =
                    where_clause::parse_with(w, q.params, &cols, lookup).map_err(|e| {
                        match e.field() {
                            "where" => v::where_error(e.to_string()),
                            field => ValidationErrors::single(field, e.to_string()),
                        }
                    })?;
                // Upstream checks the params map only once the clause itself is valid.
                if let Some(e) = q.params_error {
                    return Err(e.to_validation_errors());
                }
                let sql = p.to_sql();
                (Some(p), Some(sql))
            }
        };
        let subquery = match (&predicate, tables) {
            (Some(p), Some(tables)) if !p.subqueries().is_empty() => {
                Some(Arc::new(subquery_def(p, &table, tables)?))
            }
            _ => None,
        };
        let key_cols = if table.pk.is_empty() {
            let mut all: Vec<usize> = (0..table.columns.len()).collect();
            all.sort_by(|a, b| {
                table.columns[*a]
                    .info
                    .name
                    .cmp(&table.columns[*b].info.name)
            });
            all
        } else {
            table.pk.clone()
        };
        let canonical = canonical_string(&table, &selected, where_sql.as_deref(), q.replica, q.log);
        let hash = protocol::handle::shape_hash(canonical.as_bytes());
        let projection_hash = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            table.oid.hash(&mut h);
            selected.hash(&mut h);
            h.finish()
        };
        let schema_header = {
            let cols: Vec<protocol::schema::ColumnInfo> = selected
                .iter()
                .map(|&i| table.columns[i].info.clone())
                .collect();
            protocol::schema::schema_header(&cols)
        };
        Ok(Self {
            table,
            selected,
            predicate,
            subquery,
            where_sql,
            replica: q.replica,
            log: q.log,
            key_cols,
            queryable: queryable_idx,
            schema_header,
            where_raw: q.where_clause.map(str::to_string),
            params_raw: q.params.to_vec(),
            canonical,
            hash,
            projection_hash,
        })
    }

    /// Whether `row` (text values by table column index) is in the shape.
    #[inline]
    pub fn matches<'r>(&self, get: &(dyn Fn(usize) -> Option<&'r [u8]> + 'r)) -> bool {
        match &self.predicate {
            None => true,
            Some(p) => p.eval(get),
        }
    }

    pub fn owner_core(&self, cores: usize) -> usize {
        self.hash as usize % cores
    }
}

/// Upstream's `validate_queryable_columns`: every PK column listed, then every name a column
/// of the table (generated ones count), then non-empty. Returns the names, deduplicated.
fn check_queryable(table: &TableInfo, names: &[String]) -> Result<Vec<String>, ValidationErrors> {
    let missing_pk: Vec<String> = table
        .pk
        .iter()
        .map(|&p| table.columns[p].info.name.clone())
        .filter(|pk| !names.contains(pk))
        .collect();
    if !missing_pk.is_empty() {
        return Err(v::queryable_missing_pk_columns(&missing_pk));
    }
    let unknown: Vec<String> = names
        .iter()
        .filter(|name| table.column_index(name).is_none() && !table.generated.contains(name))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(v::queryable_columns_not_found(&unknown));
    }
    if names.is_empty() {
        return Err(v::queryable_columns_empty());
    }
    let mut unique = names.to_vec();
    unique.sort_unstable();
    unique.dedup();
    Ok(unique)
}

/// The projection, as indexes into `table.columns` in table order. Checks follow upstream's
/// `validate_selected_columns`: with `columns`, missing PK columns, then names outside the
/// table (or outside `queryable`), then generated columns, then emptiness; without, the
/// implicit selection (`queryable`, else every column) must not contain generated columns.
fn select_columns(
    table: &TableInfo,
    columns: Option<&[String]>,
    queryable: Option<&[String]>,
) -> Result<Vec<usize>, ValidationErrors> {
    let Some(cols) = columns else {
        let implicit_generated: Vec<String> = match queryable {
            None => table.generated.clone(),
            Some(names) => table
                .generated
                .iter()
                .filter(|g| names.contains(g))
                .cloned()
                .collect(),
        };
        if !implicit_generated.is_empty() {
            return Err(v::generated_columns(&implicit_generated, true));
        }
        return Ok(match queryable {
            None => (0..table.columns.len()).collect(),
            Some(names) => {
                let mut idx: Vec<usize> =
                    names.iter().filter_map(|n| table.column_index(n)).collect();
                idx.sort_unstable();
                idx
            }
        });
    };
    let missing_pk: Vec<String> = table
        .pk
        .iter()
        .map(|&p| table.columns[p].info.name.clone())
        .filter(|pk| !cols.contains(pk))
        .collect();
    if !missing_pk.is_empty() {
        return Err(v::missing_pk_columns(&missing_pk));
    }
    let selectable = |name: &String| match queryable {
        Some(names) => names.contains(name),
        None => table.column_index(name).is_some() || table.generated.contains(name),
    };
    let unknown: Vec<String> = cols.iter().filter(|c| !selectable(c)).cloned().collect();
    if !unknown.is_empty() {
        return Err(v::columns_not_found(&unknown));
    }
    let generated: Vec<String> = cols
        .iter()
        .filter(|c| table.generated.contains(c))
        .cloned()
        .collect();
    if !generated.is_empty() {
        return Err(v::generated_columns(&generated, false));
    }
    if cols.is_empty() {
        return Err(v::empty_columns());
    }
    let mut idx: Vec<usize> = cols.iter().filter_map(|c| table.column_index(c)).collect();
    idx.sort_unstable();
    idx.dedup();
    Ok(idx)
}

fn canonical_string(
    t: &TableInfo,
    selected: &[usize],
    where_sql: Option<&str>,
    replica: Replica,
    log: LogMode,
) -> String {
    // Length-prefix every free-text part so no two different definitions can collide.
    let mut s = String::new();
    let mut part = |v: &str| {
        s.push_str(&v.len().to_string());
        s.push(':');
        s.push_str(v);
        s.push('|');
    };
    part(&t.oid.to_string());
    part(&t.schema);
    part(&t.name);
    for c in selected {
        part(&t.columns[*c].info.name);
    }
    part(where_sql.unwrap_or(""));
    part(match replica {
        Replica::Default => "default",
        Replica::Full => "full",
    });
    part(match log {
        LogMode::Full => "full",
        LogMode::ChangesOnly => "changes_only",
    });
    s
}

#[cfg(test)]
impl ShapeDef {
    /// A definition on `public.t (id int4 primary key)` with an optional WHERE, for unit tests
    /// that need a real definition but no database.
    pub fn for_tests(where_clause: Option<&str>) -> Self {
        let query = match where_clause {
            Some(w) => format!("table=t&offset=-1&where={}", w.replace(' ', "+")),
            None => "table=t&offset=-1".to_owned(),
        };
        let q = protocol::request::parse_shape_query(&query).expect("a valid test query");
        let table = Arc::new(TableInfo {
            oid: 1,
            schema: "public".into(),
            name: "t".into(),
            columns: vec![TableColumn {
                info: protocol::schema::ColumnInfo {
                    name: "id".into(),
                    type_oid: 23,
                    type_name: "int4".into(),
                    dims: 0,
                    is_array: false,
                    pk_index: Some(0),
                    not_null: true,
                    type_mod: -1,
                    type_kind: protocol::schema::TypeKind::Base,
                    element_kind: None,
                    is_generated: false,
                    formatted_type: "integer".into(),
                },
                type_oid: 23,
                is_enum: false,
            }],
            pk: vec![0],
            generated: Vec::new(),
        });
        Self::build(&DefParams::of_shape(&q).expect("a table"), table).expect("a valid definition")
    }
}
