use super::*;
use crate::offset::LogOffset;

fn ok(query: &str) -> ShapeQuery {
    match parse_shape_query(query) {
        Ok(parsed) => parsed,
        Err(err) => panic!("{query}: {err:?}"),
    }
}

/// The rendered 400 body for a query that must fail validation.
fn body(query: &str) -> String {
    match parse_shape_query(query) {
        Err(RequestError::Invalid(errors)) => errors.body(),
        other => panic!("{query}: expected validation errors, got {other:?}"),
    }
}

fn one(field: &str, message: &str) -> String {
    ValidationErrors::single(field, message).body()
}

fn table(schema: &str, name: &str) -> Option<QualifiedTable> {
    Some(QualifiedTable {
        schema: schema.to_owned(),
        name: name.to_owned(),
    })
}

#[test]
fn minimal_initial_request() {
    let query = ok("table=items&offset=-1");
    assert_eq!(query.table, table("public", "items"));
    assert_eq!(query.offset, OffsetParam::BeforeAll);
    assert_eq!(query.handle, None);
    assert!(!query.live && !query.live_sse);
    assert_eq!(query.replica, Replica::Default);
    assert_eq!(query.log, LogMode::Full);
    assert_eq!(query.columns, None);
    assert_eq!(query.params, Vec::<String>::new());
    assert!(!query.has_subset);
}

#[test]
fn full_live_request() {
    let query = ok(
        "table=electric_test.%22issues%20for%201%22&offset=26800584_4&handle=3-4\
         &live=true&cursor=123&where=id+%3E+%241&params[1]=5&columns=id,%22Title%22\
         &replica=full&log=changes_only&secret=s&expired_handle=x&cache-buster=y",
    );
    assert_eq!(query.table, table("electric_test", "issues for 1"));
    assert_eq!(query.offset, OffsetParam::At(LogOffset::new(26800584, 4)));
    assert_eq!(query.handle.as_deref(), Some("3-4"));
    assert!(query.live);
    assert_eq!(query.cursor.as_deref(), Some("123"));
    assert_eq!(query.where_clause.as_deref(), Some("id > $1"));
    assert_eq!(query.params, ["5"]);
    assert_eq!(query.params_error, None);
    assert_eq!(
        query.columns,
        Some(vec!["id".to_owned(), "Title".to_owned()])
    );
    assert_eq!(query.replica, Replica::Full);
    assert_eq!(query.log, LogMode::ChangesOnly);
}

#[test]
fn upstream_plug_test_errors() {
    assert_eq!(
        body("table=.invalid_shape&offset=-1"),
        one("table", "Invalid zero-length delimited identifier")
    );
    assert_eq!(
        body("table=foo&offset=invalid"),
        one("offset", "has invalid format")
    );
    assert_eq!(
        body("table=foo&offset=0_-1"),
        one("offset", "has invalid format")
    );
    assert_eq!(body("offset=-1"), one("table", "can't be blank"));
    assert_eq!(
        body("table=public.users&offset=0_0"),
        one("handle", "can't be blank when offset != -1")
    );
    assert_eq!(
        body("table=public.users&offset=-1&live=true"),
        one("live", "can't be true when offset == -1")
    );
    assert_eq!(
        body("table=t&offset=now&live"),
        one("live", "can't be true when offset is 'now'")
    );
    assert_eq!(
        body("table=t"),
        r#"{"message":"Invalid request","errors":{"offset":["can't be blank"]}}"#
    );
    assert_eq!(
        body("table=a.b.c&offset=-1"),
        one(
            "table",
            "Invalid relation identifier, too many delimiters: a.b.c"
        )
    );
}

#[test]
fn table_parsing_accepts_unicode_names() {
    let query = ok("table=_val1d_sch%C3%ABma%CE%A6%24.%CE%A6t%C3%A0ble&offset=-1");
    assert_eq!(query.table, table("_val1d_schëmaΦ$", "Φtàble"));
    assert_eq!(ok("table=Items&offset=-1").table, table("public", "items"));
}

#[test]
fn empty_values_count_as_absent() {
    assert_eq!(body("table=t&offset="), one("offset", "can't be blank"));
    assert_eq!(body("table=t&offset=%20"), one("offset", "can't be blank"));
    assert_eq!(body("table=&offset=-1"), one("table", "can't be blank"));
    assert_eq!(
        body("table=t&offset=0_0&handle=+"),
        one("handle", "can't be blank when offset != -1")
    );
    let query = ok("table=t&offset=-1&where=&columns=&replica=&params=&log=");
    assert_eq!(query.where_clause, None);
    assert_eq!(query.columns, None);
    assert_eq!(query.replica, Replica::Default);
}

#[test]
fn handle_is_dropped_for_minus_one_and_now() {
    assert_eq!(ok("table=t&offset=-1&handle=1-2").handle, None);
    assert_eq!(ok("table=t&offset=now&handle=1-2").handle, None);
    assert_eq!(
        ok("table=t&offset=-1_0&handle=1-2").offset,
        OffsetParam::BeforeAll
    );
    assert_eq!(
        ok("table=t&offset=0_inf&handle=1-2").handle.as_deref(),
        Some("1-2")
    );
}

#[test]
fn live_truthiness() {
    let live = |flag: &str| ok(&format!("table=t&offset=0_0&handle=h{flag}")).live;
    assert!(live("&live"));
    assert!(live("&live="));
    assert!(live("&live=true"));
    assert!(live("&live=0"));
    assert!(live("&live=no"));
    assert!(live("&live[x]=1"));
    assert!(!live("&live=false"));
    assert!(!live(""));
    // `live=false` is allowed with -1.
    assert!(!ok("table=t&offset=-1&live=false").live);
}

#[test]
fn live_sse_rules() {
    let base = "table=t&offset=0_0&handle=h";
    assert!(ok(&format!("{base}&live&live_sse")).live_sse);
    assert!(ok(&format!("{base}&live&live_sse=yes")).live_sse);
    assert!(!ok(&format!("{base}&live&live_sse=false")).live_sse);
    assert_eq!(
        body(&format!("{base}&live_sse=true")),
        one("live_sse", "can't be true unless live is also true")
    );
    // Deprecated alias: strict boolean, only when live_sse is absent.
    assert!(ok(&format!("{base}&live&experimental_live_sse=true")).live_sse);
    assert!(ok(&format!("{base}&live&experimental_live_sse=1")).live_sse);
    assert!(!ok(&format!("{base}&live&experimental_live_sse=0")).live_sse);
    assert!(!ok(&format!("{base}&live&experimental_live_sse=")).live_sse);
    assert_eq!(
        body(&format!("{base}&live&experimental_live_sse=yes")),
        one("live_sse", "is invalid")
    );
    assert!(
        !ok(&format!(
            "{base}&live&live_sse=false&experimental_live_sse=true"
        ))
        .live_sse
    );
}

#[test]
fn enums_and_booleans_are_strict() {
    assert_eq!(
        body("table=t&offset=-1&replica=FULL"),
        one("replica", "is invalid")
    );
    assert_eq!(
        body("table=t&offset=-1&log=changes"),
        one("log", "is invalid")
    );
    assert_eq!(
        body("table=t&offset=-1&experimental_compaction=yes"),
        one("experimental_compaction", "is invalid")
    );
    assert!(ok("table=t&offset=-1&experimental_compaction=1").experimental_compaction);
}

#[test]
fn cast_errors_are_reported_together() {
    assert_eq!(
        body("replica=x&log=y&table=t"),
        r#"{"message":"Invalid request","errors":{"log":["is invalid"],"offset":["can't be blank"],"replica":["is invalid"]}}"#
    );
    // Later checks do not run while cast errors exist.
    assert_eq!(
        body("offset=bad&columns=a@b"),
        one(
            "columns",
            "Invalid unquoted identifier contains special characters: a@b"
        )
    );
    // A non-string offset is a cast error, and then not also "blank".
    assert_eq!(body("table=t&offset[x]=1"), one("offset", "is invalid"));
    assert_eq!(body("table[a]=t&offset=-1"), one("table", "is invalid"));
    assert_eq!(
        body("table=t&offset=-1&where[]=x"),
        one("where", "is invalid")
    );
}

#[test]
fn column_lists() {
    let columns = |query: &str| ok(query).columns.expect("columns set");
    assert_eq!(
        columns(
            "table=t&offset=-1&columns=id,%22has,comma%22,%22has%22%22quote%22,%22has%20space%22"
        ),
        ["id", "has,comma", "has\"quote", "has space"]
    );
    assert_eq!(
        columns("table=t&offset=-1&columns[]=A&columns[]=b"),
        ["A", "b"]
    );
    assert_eq!(
        body("table=t&offset=-1&columns=id,"),
        one("columns", "Invalid zero-length delimited identifier")
    );
    assert_eq!(
        body("table=t&offset=-1&columns=%22a%22b%22"),
        one("columns", "Invalid identifier with unescaped quote: a\"b")
    );
    assert_eq!(
        body(&format!("table=t&offset=-1&columns={}", "x".repeat(64))),
        one("columns", "Identifier is too long (max length is 63)")
    );
    assert_eq!(
        body("table=t&offset=-1&columns[]=a&columns[]="),
        one("columns", "Invalid zero-length identifier")
    );
    assert_eq!(
        body("table=t&offset=-1&columns[a]=b"),
        one("columns", "is invalid")
    );
    assert_eq!(
        ok("table=t&offset=-1&queryable_columns=id,name").queryable_columns,
        Some(vec!["id".to_owned(), "name".to_owned()])
    );
}

#[test]
fn queryable_columns_parse_like_columns() {
    assert_eq!(
        ok(r#"table=t&offset=-1&queryable_columns=id,%22Name%22,B"#).queryable_columns,
        Some(vec!["id".to_owned(), "Name".to_owned(), "b".to_owned()])
    );
    assert_eq!(
        ok("table=t&offset=-1&queryable_columns[]=id&queryable_columns[]=Name").queryable_columns,
        Some(vec!["id".to_owned(), "Name".to_owned()])
    );
    // Blank counts as absent, as for `columns`.
    assert_eq!(
        ok("table=t&offset=-1&queryable_columns=%20").queryable_columns,
        None
    );
    assert_eq!(
        body("table=t&offset=-1&queryable_columns=id,,x"),
        one(
            "queryable_columns",
            "Invalid zero-length delimited identifier"
        )
    );
    assert_eq!(
        body("table=t&offset=-1&queryable_columns=a@b"),
        one(
            "queryable_columns",
            "Invalid unquoted identifier contains special characters: a@b"
        )
    );
    assert_eq!(
        body("table=t&offset=-1&queryable_columns[]="),
        one("queryable_columns", "Invalid zero-length identifier")
    );
    assert_eq!(
        body("table=t&offset=-1&queryable_columns[k]=v"),
        one("queryable_columns", "is invalid")
    );
    // A cast error, so reported with the other cast errors.
    assert_eq!(
        body("replica=x&queryable_columns=a@b&offset=-1&table=t"),
        r#"{"message":"Invalid request","errors":{"queryable_columns":["Invalid unquoted identifier contains special characters: a@b"],"replica":["is invalid"]}}"#
    );
}

#[test]
fn unsupported_options_are_refused_not_ignored() {
    assert_eq!(ok("table=t&offset=-1").unsupported_option(), None);
    assert_eq!(
        ok("table=t&offset=-1&experimental_compaction=false").unsupported_option(),
        None
    );
    assert_eq!(
        ok("table=t&offset=-1&experimental_compaction=true")
            .unsupported_option()
            .map(|e| e.body()),
        Some(
            r#"{"message":"Invalid request","errors":{"experimental_compaction":["is not supported by this server"]}}"#
                .to_owned()
        )
    );
    // Unknown parameters (client cache busters) stay accepted.
    let q = ok("table=t&offset=-1&cache-buster=1&expired_handle=1-2&source_id=x");
    assert_eq!(q.unsupported_option(), None);
}

#[test]
fn params_map() {
    let query = ok("table=t&offset=-1&where=a=$1+and+b=$2&params[2]=two&params[1]=one");
    assert_eq!(query.params, ["one", "two"]);
    let query = ok("table=t&offset=-1&params[1]=a&params[3]=c");
    assert_eq!(query.params_error, Some(ParamsError::NotSequential));
    assert!(query.params.is_empty());
    let query = ok("table=t&offset=-1&params[x]=a");
    assert_eq!(query.params_error, Some(ParamsError::NonNumericKeys));
    assert_eq!(
        ok("table=t&offset=-1&params[1]=a&params[01]=b").params_error,
        Some(ParamsError::NotSequential)
    );
    assert_eq!(
        ok(&format!("table=t&offset=-1&params[{}]=a", "9".repeat(50))).params_error,
        Some(ParamsError::NotSequential)
    );
    assert_eq!(ok("table=t&offset=-1&params[%2B1]=a").params, ["a"]);
    assert_eq!(
        ParamsError::NonNumericKeys.to_validation_errors().body(),
        r#"{"message":"Invalid request","errors":{"params":["Parameters can only use numbers as keys"]}}"#
    );
    assert_eq!(
        ParamsError::NotSequential.to_string(),
        "Parameters must be numbered sequentially, starting from 1"
    );
    // Not a map: a cast error.
    assert_eq!(
        body("table=t&offset=-1&params=abc"),
        one("params", "is invalid")
    );
    assert_eq!(
        body("table=t&offset=-1&params[1][x]=a"),
        one("params", "is invalid")
    );
    assert_eq!(
        body("table=t&offset=-1&params[]=a"),
        one("params", "is invalid")
    );
}

#[test]
fn subset_detection() {
    let query = ok("table=t&offset=-1&subset__limit=10&api_secret=old");
    assert!(query.has_subset);
    assert!(!ok("table=t&offset=-1&subset_limit=10").has_subset);
}

#[test]
fn malformed_query_strings() {
    assert_eq!(
        parse_shape_query("table=%zz&offset=-1"),
        Err(RequestError::MalformedQueryString(
            QueryStringError::InvalidPercentEncoding
        ))
    );
}

fn delete_body(query: &str) -> String {
    match parse_delete_query(query) {
        Err(RequestError::Invalid(errors)) => errors.body(),
        other => panic!("{query}: expected validation errors, got {other:?}"),
    }
}

#[test]
fn delete_by_handle_or_definition() {
    let by_handle = parse_delete_query("handle=1-2").unwrap();
    assert_eq!(by_handle.table, None);
    assert_eq!(by_handle.handle.as_deref(), Some("1-2"));

    let by_definition = parse_delete_query("table=Foo&where=x&offset=garbage&live=true").unwrap();
    assert_eq!(by_definition.table, table("public", "foo"));
    assert_eq!(by_definition.handle, None);
    assert_eq!(by_definition.where_clause.as_deref(), Some("x"));

    let both = parse_delete_query("table=foo&handle=1-2").unwrap();
    assert_eq!(both.handle.as_deref(), Some("1-2"));

    assert_eq!(
        delete_body(""),
        one("handle", "can't be blank when shape definition is missing")
    );
    assert_eq!(
        delete_body("table=a.b.c"),
        one(
            "table",
            "Invalid relation identifier, too many delimiters: a.b.c"
        )
    );
    // DELETE casts `live` strictly (no GET-style truthiness).
    assert_eq!(delete_body("handle=h&live=yes"), one("live", "is invalid"));
    assert_eq!(
        delete_body("replica=x"),
        r#"{"message":"Invalid request","errors":{"handle":["can't be blank when shape definition is missing"],"replica":["is invalid"]}}"#
    );
    assert_eq!(
        delete_body("table=t&replica=x"),
        one("replica", "is invalid")
    );
}
