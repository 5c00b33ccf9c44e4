use super::*;

fn table(schema: &str, name: &str) -> QualifiedTable {
    QualifiedTable {
        schema: schema.to_owned(),
        name: name.to_owned(),
    }
}

fn message<T: std::fmt::Debug>(result: Result<T, IdentError>) -> String {
    result.unwrap_err().to_string()
}

#[test]
fn identifier_doctests() {
    assert_eq!(parse_identifier("FooBar").unwrap(), "foobar");
    assert_eq!(parse_identifier(r#""FooBar""#).unwrap(), "FooBar");
    assert_eq!(
        message(parse_identifier(r#"Foo"Bar""#)),
        r#"Invalid unquoted identifier contains special characters: Foo"Bar""#
    );
    assert_eq!(
        message(parse_identifier(" ")),
        "Invalid unquoted identifier contains special characters:  "
    );
    assert_eq!(
        message(parse_identifier("foob@r")),
        "Invalid unquoted identifier contains special characters: foob@r"
    );
    assert_eq!(
        message(parse_identifier(r#""Foo"Bar""#)),
        r#"Invalid identifier with unescaped quote: Foo"Bar"#
    );
    assert_eq!(message(parse_identifier(r#""""#)), ZERO_LENGTH_MESSAGE);
    assert_eq!(message(parse_identifier("")), ZERO_LENGTH_MESSAGE);
    assert_eq!(message(parse_identifier("\"")), ZERO_LENGTH_MESSAGE);
    assert_eq!(
        message(parse_identifier(&"a".repeat(64))),
        "Identifier is too long (max length is 63)"
    );
    assert_eq!(parse_identifier(&"a".repeat(63)).unwrap(), "a".repeat(63));
    assert_eq!(parse_identifier(r#"" ""#).unwrap(), " ");
    assert_eq!(parse_identifier(r#""Foo""Bar""#).unwrap(), r#"Foo"Bar"#);
}

#[test]
fn unquoted_identifier_character_classes() {
    assert_eq!(parse_identifier("_a1$").unwrap(), "_a1$");
    assert_eq!(parse_identifier("Ünïcode").unwrap(), "Ünïcode");
    assert_eq!(parse_identifier("日本").unwrap(), "日本");
    assert!(parse_identifier("1abc").is_err());
    assert!(parse_identifier("$abc").is_err());
    assert!(parse_identifier("a-b").is_err());
    assert!(parse_identifier("a.b").is_err());
    // Only ASCII letters are lower-cased.
    assert_eq!(parse_identifier("ÀB").unwrap(), "Àb");
    // Upstream's `$` anchor tolerates one trailing newline.
    assert_eq!(parse_identifier("abc\n").unwrap(), "abc\n");
    assert!(parse_identifier("abc\n\n").is_err());
}

#[test]
fn quoted_identifier_quote_runs() {
    // Runs of 2+ quotes never count as "unescaped"; pairs are then collapsed left to right.
    assert_eq!(parse_identifier(r#""a"""b""#).unwrap(), r#"a""b"#);
    assert!(parse_identifier(r#""a"b""#).is_err());
    assert_eq!(parse_identifier(r#""""""#).unwrap(), "\"");
}

#[test]
fn relation_doctests() {
    assert_eq!(parse_table("foo").unwrap(), table("public", "foo"));
    assert_eq!(parse_table("foo.bar").unwrap(), table("foo", "bar"));
    assert_eq!(parse_table(r#""foo"."bar""#).unwrap(), table("foo", "bar"));
    assert_eq!(
        parse_table(r#""foo.woah"."bar""#).unwrap(),
        table("foo.woah", "bar")
    );
    assert_eq!(parse_table(r#""foo".bar"#).unwrap(), table("foo", "bar"));
    assert_eq!(parse_table("Foo.BAR").unwrap(), table("foo", "bar"));
    assert_eq!(
        message(parse_table(r#""foo"."bar"#)),
        r#"Invalid unquoted identifier contains special characters: "bar"#
    );
    assert_eq!(
        message(parse_table("foo.bar.baz")),
        "Invalid relation identifier, too many delimiters: foo.bar.baz"
    );
    assert_eq!(
        parse_table(r#"electric_test."issues for 1_2""#).unwrap(),
        table("electric_test", "issues for 1_2")
    );
    assert_eq!(message(parse_table(".x")), ZERO_LENGTH_MESSAGE);
}

#[test]
fn columns_doctests() {
    assert_eq!(message(parse_columns("")), ZERO_LENGTH_MESSAGE);
    assert_eq!(message(parse_columns("foo,")), ZERO_LENGTH_MESSAGE);
    assert_eq!(parse_columns("id").unwrap(), ["id"]);
    assert_eq!(parse_columns("id,name").unwrap(), ["id", "name"]);
    assert_eq!(
        parse_columns(r#""PoT@To",PoTaTo"#).unwrap(),
        ["PoT@To", "potato"]
    );
    assert_eq!(
        parse_columns(r#""PoTaTo,sunday",foo"#).unwrap(),
        ["PoTaTo,sunday", "foo"]
    );
    assert_eq!(parse_columns(r#""fo""o",bar"#).unwrap(), [r#"fo"o"#, "bar"]);
    assert_eq!(
        message(parse_columns(r#""id,"name""#)),
        r#"Invalid unquoted identifier contains special characters: "id"#
    );
    assert_eq!(
        parse_columns(r#""has,comma","has""quote","has space""#).unwrap(),
        ["has,comma", "has\"quote", "has space"]
    );
}

#[test]
fn quoting_for_sql() {
    assert_eq!(quote_ident("items"), r#""items""#);
    assert_eq!(quote_ident(r#"a"b"#), r#""a""b""#);
    assert_eq!(quote_ident(""), r#""""#);
    assert_eq!(
        quote_table(&table("public", "Items")),
        r#""public"."Items""#
    );
    // Quoting and parsing are inverse for any non-empty, short name.
    for name in ["x", "A b", "a\"\"b", "\"", "日本.x"] {
        assert_eq!(parse_identifier(&quote_ident(name)).unwrap(), name);
    }
}
