//! Differential test of the WHERE front end against a real Postgres.
//!
//! Goal: `Predicate::eval` over pgoutput-style text values must agree with Postgres on every
//! row, and `Predicate::to_sql` must mean the same as the clause the user wrote; the shape
//! router (`routing::Router`, with every clause of the run as one table's shapes, so its
//! indexes, template and LIKE groups and candidate terms all hold many members) must route
//! each row to exactly the clauses Postgres finds TRUE.
//! Method: random rows (with NULLs and edge values) go into a table; their text forms are
//! read back exactly as Postgres prints them; thousands of random clauses are parsed, and
//! each clause is evaluated by Postgres — both as written (when it has no params) and as
//! rendered by `to_sql` — as `(<clause>) IS TRUE` for every row, in large batches through a
//! plpgsql helper that reports clauses Postgres rejects at run time (those are skipped).
//! Any disagreement prints the clause, its rendering and the row.
//!
//! The run is seeded and small enough for CI. For a soak run, override the seed and the number
//! of clauses: `WHERE_DIFF_SEED=12345 WHERE_DIFF_CLAUSES=50000 cargo test -p protocol --test
//! where_differential -- --nocapture` (the seed is any nonzero u64).

use std::collections::HashSet;

use protocol::routing::Router;
use protocol::where_clause::{parse, ColumnType};

const SEED: u64 = 0x5eed_2024_0001;
const ROWS: usize = 48;
/// Default number of clauses (`WHERE_DIFF_CLAUSES` overrides it).
const CLAUSES: usize = 2_400;
const BATCH: usize = 400;

const SESSION: &str =
    "SET DateStyle = 'ISO, DMY'; SET TimeZone = 'UTC'; SET extra_float_digits = 1; \
     SET IntervalStyle = 'postgres';\n";

/// (name, SQL type, typname) of the table's columns after `id`.
const COLUMNS: &[(&str, &str, &str)] = &[
    ("i4", "int4", "int4"),
    ("i8", "int8", "int8"),
    ("n", "numeric", "numeric"),
    ("t", "text", "text"),
    ("b", "bool", "bool"),
    ("f", "float8", "float8"),
    ("d", "date", "date"),
    ("ts", "timestamptz", "timestamptz"),
    ("tsn", "timestamp", "timestamp"),
    ("u", "uuid", "uuid"),
    ("i2", "int2", "int2"),
    ("f4", "float4", "float4"),
    ("c", "char(4)", "bpchar"),
    ("ia", "int4[]", "int4"),
    ("ta", "text[]", "text"),
    ("iv", "interval", "interval"),
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: small, seeded, reproducible.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const INTS4: &[&str] = &[
    "0",
    "1",
    "-1",
    "42",
    "7",
    "2147483647",
    "-2147483648",
    "100",
];
const INTS8: &[&str] = &[
    "0",
    "42",
    "-7",
    "3000000000",
    "9223372036854775807",
    "-9223372036854775808",
    "9007199254740993",
];
const NUMERICS: &[&str] = &[
    "0",
    "1.5",
    "1.50",
    "-0.001",
    "NaN",
    "42",
    "Infinity",
    "-Infinity",
    "7.0000",
    "123456789012345678901234567890.123",
    "9007199254740993",
    "0.1",
];
const TEXTS: &[&str] = &[
    "",
    "a",
    "A",
    "abc",
    "abd",
    "a%b",
    "a_b",
    "école",
    "École",
    "it's",
    "back\\slash",
    "z",
    "ab ",
    "Zebra",
    "42",
    "aBc",
    // Characters whose case mapping is not one simple character in Rust: İ lowercases to
    // "i̇" (two characters) where glibc's towlower, which Postgres uses, gives "i".
    "İ",
    "İstanbul",
    "i",
    "ẞ",
    "ß",
    "\u{212A}elvin",
];
const FLOATS: &[&str] = &[
    "0",
    "-0",
    "0.1",
    "1e308",
    "NaN",
    "Infinity",
    "-Infinity",
    "42",
    "1.5",
    "-2.5e-10",
    "9007199254740993",
    "3000000000",
];
const INTS2: &[&str] = &["0", "1", "-1", "32767", "-32768", "300", "7", "-200"];
const FLOATS4: &[&str] = &[
    "0", "1.5", "-2.25", "3e38", "1e-38", "NaN", "Infinity", "42", "0.1", "-7",
];
const CHARS: &[&str] = &["a", "ab  ", "abcd", "", "É", "a b", " a"];
const INT_ARRAYS: &[&str] = &[
    "{1,2,3}",
    "{}",
    "{NULL,42}",
    "{{1,2},{3,4}}",
    "[0:2]={7,8,9}",
    "{-2147483648,42,2147483647}",
    "{42}",
    "{7,7,NULL}",
];
const TEXT_ARRAYS: &[&str] = &[
    "{a,\"b c\",NULL}",
    "{\"\",z}",
    "{\"NULL\",\"a,b\"}",
    "{\"q\\\"x\",\"back\\\\slash\"}",
    "{}",
    "{{a,b},{c,d}}",
    "{école,École,abc}",
    "{\" a \",A}",
];
const DATES: &[&str] = &[
    "2024-01-05",
    "2000-01-01",
    "infinity",
    "-infinity",
    "0044-03-15 BC",
    "1999-12-31",
    "2024-02-29",
    "1970-01-01",
    "294276-12-31",
    "2023-03-31",
];
const TIMESTAMPS: &[&str] = &[
    "2024-01-05 00:00:00",
    "2024-01-05 10:30:00.123456",
    "infinity",
    "-infinity",
    "2000-01-01 00:00:00",
    "1999-12-31 23:59:59.999999",
    "0044-03-15 12:00:00 BC",
    "2024-01-04 23:00:00",
    "294276-12-31 23:59:59",
    "4714-11-24 00:00:00 BC",
    "2024-01-31 12:00:00",
];
/// Output forms, common input forms, ISO 8601 and range edges.
const INTERVALS: &[&str] = &[
    "1 day 02:03:04",
    "-1 years -2 mons +3 days -04:05:06.5",
    "00:00:00",
    "3 mons",
    "1 mon",
    "30 days",
    "720:00:00",
    "-1 days +01:00:00",
    "1 year 2 months",
    "2 hours",
    "90 minutes",
    "1.5 days",
    "P1DT2H",
    "@ 1 day ago",
    "00:00:00.000001",
    "178956970 years",
    "-2147483648 days",
    "2562047788:00:54.775807",
    "-1.5 weeks",
    "0.7 years",
];
const UUIDS: &[&str] = &[
    "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    "00000000-0000-0000-0000-000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "7f000000-0000-0000-0000-000000000001",
];
const PATTERNS: &[&str] = &[
    "a%", "%b%", "_", "a\\%b", "a\\_b", "%", "", "É%", "%c", "a_c", "%\\\\%", "ab_", "%'%", "%É%",
    "%a", "%Ab%", "%é%", "%bra", "%_b%", "%\\_%", "abc", "%z%e%",
];

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn values_for(column: &str) -> &'static [&'static str] {
    match column {
        "i4" => INTS4,
        "i8" => INTS8,
        "n" => NUMERICS,
        "t" => TEXTS,
        "b" => &["true", "false"],
        "f" => FLOATS,
        "d" => DATES,
        "ts" | "tsn" => TIMESTAMPS,
        "u" => UUIDS,
        "i2" => INTS2,
        "f4" => FLOATS4,
        "c" => CHARS,
        "ia" => INT_ARRAYS,
        "ta" => TEXT_ARRAYS,
        "iv" => INTERVALS,
        other => panic!("no values for {other}"),
    }
}

fn random_row(rng: &mut Rng, id: usize) -> String {
    let mut values = vec![id.to_string()];
    for (name, sql_type, _) in COLUMNS {
        if rng.chance(15) {
            values.push("NULL".to_string());
            continue;
        }
        let mut value = rng.pick(values_for(name)).to_string();
        if (*name == "i4" || *name == "i8") && rng.chance(30) {
            value = (rng.next() as i32).to_string();
        }
        // Range edges stay without an offset, which could push them out of range.
        let edge = value.starts_with("294276") || value.starts_with("4714");
        if *name == "ts" && rng.chance(40) && !value.contains("inf") && !edge {
            let suffix: &&str = rng.pick(&["+00", "+05:30", "-08"]);
            value.push_str(suffix);
        }
        values.push(format!("{}::{sql_type}", quote(&value)));
    }
    format!("({})", values.join(", "))
}

/// A literal for comparing with `column`, in one of several spellings; may add a param.
fn literal(rng: &mut Rng, column: &str, params: &mut Vec<String>) -> String {
    let value = rng.pick(values_for(column)).to_string();
    let value = if column == "ts" && rng.chance(40) && !value.contains("inf") {
        format!("{value}{}", rng.pick(&["+02", "Z", "-03:30"]))
    } else {
        value
    };
    let numeric_like = matches!(column, "i4" | "i8" | "n" | "f");
    let plain_ok = numeric_like
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
        && !value.starts_with('-');
    match rng.below(5) {
        0 if plain_ok => value,
        1 => {
            params.push(value);
            format!("${}", params.len())
        }
        2 => {
            let ty = COLUMNS
                .iter()
                .find(|c| c.0 == column)
                .map_or("text", |c| c.2);
            format!("{}::{ty}", quote(&value))
        }
        _ => quote(&value),
    }
}

const OPS: &[&str] = &["=", "<>", "!=", "<", "<=", ">", ">="];

/// Pairs of columns Postgres can compare directly.
const PAIRS: &[(&str, &str)] = &[
    ("i4", "i8"),
    ("i4", "n"),
    ("i8", "n"),
    ("i8", "f"),
    ("n", "f"),
    ("i4", "f"),
    ("d", "ts"),
    ("d", "tsn"),
    ("ts", "tsn"),
    ("t", "t"),
    ("iv", "iv"),
];

fn leaf(rng: &mut Rng, params: &mut Vec<String>) -> String {
    let (column, sql_type, _) = *rng.pick(COLUMNS);
    // Arrays have their own leaves (array comparison operators are not supported).
    if sql_type.ends_with("[]") {
        return array_leaf(rng, params);
    }
    match rng.below(14) {
        12 | 13 if rng.chance(70) => interval_leaf(rng, params),
        0 => format!(
            "{column} IS {}NULL",
            if rng.chance(50) { "NOT " } else { "" }
        ),
        1 => {
            let (l, r) = *rng.pick(PAIRS);
            format!("{l} {} {r}", rng.pick(OPS))
        }
        2 if column != "b" => {
            let items: Vec<String> = (0..1 + rng.below(3))
                .map(|_| literal(rng, column, params))
                .collect();
            let not = if rng.chance(40) { "NOT " } else { "" };
            format!("{column} {not}IN ({})", items.join(", "))
        }
        3 => {
            let not = if rng.chance(50) { "NOT " } else { "" };
            format!(
                "{column} IS {not}DISTINCT FROM {}",
                literal(rng, column, params)
            )
        }
        4 if column != "b" && column != "u" => {
            let (lo, hi) = (literal(rng, column, params), literal(rng, column, params));
            let kind = rng.pick(&["BETWEEN", "NOT BETWEEN", "BETWEEN SYMMETRIC"]);
            format!("{column} {kind} {lo} AND {hi}")
        }
        5 => {
            let op = rng.pick(&["LIKE", "NOT LIKE", "ILIKE", "NOT ILIKE"]);
            let pattern = rng.pick(PATTERNS);
            let source = rng.pick(&["t", "c", "t", "lower(t)", "upper(t)", "lower(c)"]);
            format!("{source} {op} {}", quote(pattern))
        }
        6 => {
            // Casts to text compare Postgres's output functions with ours.
            let source = *rng.pick(&["i4", "n", "f", "d", "ts", "u", "b", "i8", "iv"]);
            let value = rng.pick(&["42", "1.5", "true", "2024-01-05", "0.1", "a"]);
            format!("{source}::text {} {}", rng.pick(OPS), quote(value))
        }
        7 => rng
            .pick(&[
                "b",
                "NOT b",
                "b = true",
                "b <> false",
                "b IS NOT FALSE",
                "b IS UNKNOWN",
            ])
            .to_string(),
        8 => {
            let cast = rng.pick(&[
                "i4::int8",
                "i8::numeric",
                "n::float8",
                "f::numeric",
                "d::timestamptz",
                "ts::date",
                "i4::float4",
                "n::int8",
            ]);
            let target = cast.split("::").nth(1).unwrap_or("int8");
            let value = rng.pick(&["42", "1.5", "0", "2024-01-05", "7"]);
            format!("{cast} {} {}", rng.pick(OPS), quote(value) + "::" + target)
        }
        9 if rng.chance(40) => {
            // The text form checks result types and display scales exactly.
            let expr = number_expr(rng, params, 2, false);
            match rng.below(3) {
                0 => format!("length(({expr})::text) {} {}", rng.pick(OPS), rng.below(25)),
                1 => format!(
                    "({expr})::text LIKE {}",
                    quote(rng.pick::<&str>(&["%0", "%.%", "-%", "%e%", "%5"]))
                ),
                _ => format!(
                    "({expr})::text = {}",
                    quote(rng.pick::<&str>(&["0", "1", "42", "1.5", "0.5", "-1"]))
                ),
            }
        }
        9 | 10 => {
            let expr = number_expr(rng, params, 2, false);
            let rhs = match rng.below(3) {
                0 => number_expr(rng, params, 0, false),
                1 => rng
                    .pick(&["0", "1", "42", "-7", "2147483647", "1.5"])
                    .to_string(),
                _ => {
                    params.push(rng.pick(&["0", "1", "42", "-7", "100"]).to_string());
                    format!("${}", params.len())
                }
            };
            format!("{expr} {} {rhs}", rng.pick(OPS))
        }
        11 if rng.chance(60) => text_leaf(rng, params),
        11 if rng.chance(50) => {
            let expr = match rng.below(4) {
                0 => format!("d + {}", rng.pick(&["i4", "i2", "1", "-366", "30"])),
                1 => format!("{} + d", rng.pick(&["i2", "7"])),
                2 => format!("d - {}", rng.pick(&["i4", "i2", "1", "2147483647"])),
                _ => format!(
                    "d - {}",
                    rng.pick(&["'2000-01-01'", "'2024-02-29'::date", "d"])
                ),
            };
            if expr.starts_with("d - '") || expr == "d - d" {
                format!(
                    "{expr} {} {}",
                    rng.pick(OPS),
                    rng.pick(&["0", "59", "-8797", "100"])
                )
            } else if rng.chance(30) {
                format!(
                    "({expr})::text LIKE {}",
                    quote(rng.pick::<&str>(&["%-01", "%BC", "2024%", "%inf%"]))
                )
            } else {
                format!("{expr} {} {}", rng.pick(OPS), literal(rng, "d", params))
            }
        }
        11 => array_leaf(rng, params),
        _ if column == "b" => format!("b = {}", literal(rng, "b", params)),
        _ => format!(
            "{column} {} {}",
            rng.pick(OPS),
            literal(rng, column, params)
        ),
    }
}

/// An interval-valued expression: the column, literals in several spellings, negation,
/// sums and products (including results that leave the interval range).
fn interval_expr(rng: &mut Rng, params: &mut Vec<String>, depth: usize) -> String {
    if depth == 0 || rng.chance(40) {
        return match rng.below(5) {
            0 | 1 => "iv".to_string(),
            2 => {
                params.push(rng.pick(INTERVALS).to_string());
                format!("${}::interval", params.len())
            }
            _ => format!(
                "{}::interval",
                quote(rng.pick::<&str>(&[
                    "1 day",
                    "1 mon",
                    "-1 mon",
                    "2 hours",
                    "1 year 2 months",
                    "1.5 days",
                    "P1Y2M3DT4H5M6.5S",
                    "-1 years -2 mons +3 days -04:05:06.5",
                    "90 minutes",
                    "12 mons -1 days",
                    "2147483647 mons",
                    "00:00:00.5",
                ]))
            ),
        };
    }
    let sub = |rng: &mut Rng, params: &mut Vec<String>| {
        format!("({})", interval_expr(rng, params, depth - 1))
    };
    match rng.below(5) {
        0 => format!("-{}", sub(rng, params)),
        1 | 2 => {
            let l = sub(rng, params);
            let r = sub(rng, params);
            format!("{l} {} {r}", rng.pick(&["+", "-"]))
        }
        3 => {
            let factor = rng.pick(&[
                "2", "i4", "i2", "f", "n", "1.5", "0.3", "-1", "'3'", "0", "1e-300", "f4",
            ]);
            if rng.chance(30) {
                format!("{factor} * {}", sub(rng, params))
            } else {
                format!("{} * {factor}", sub(rng, params))
            }
        }
        _ => format!(
            "{} / {}",
            sub(rng, params),
            rng.pick(&["2", "3", "7", "i2", "f", "0.5", "'4'", "-3", "1e-300", "n"])
        ),
    }
}

/// Date/time arithmetic with intervals, compared with typed values or checked through the
/// text form (which pins every field of the result).
fn interval_leaf(rng: &mut Rng, params: &mut Vec<String>) -> String {
    let ts_col = |rng: &mut Rng| *rng.pick(&["ts", "tsn", "d"]);
    match rng.below(8) {
        0 | 1 => {
            let base = ts_col(rng);
            let span = interval_expr(rng, params, 1);
            let op = rng.pick(&["+", "-"]);
            let lit = literal(rng, "ts", params);
            if rng.chance(20) && *op == "+" {
                format!("({span}) + {base} {} {lit}", rng.pick(OPS))
            } else {
                format!("{base} {op} ({span}) {} {lit}", rng.pick(OPS))
            }
        }
        2 => {
            let (l, r) = *rng.pick(&[
                ("ts", "tsn"),
                ("tsn", "ts"),
                ("ts", "d"),
                ("d", "tsn"),
                ("tsn", "'2024-01-01 00:00:00'"),
                ("ts", "'2000-01-01'::date"),
            ]);
            format!("{l} - {r} {} {}", rng.pick(OPS), literal(rng, "iv", params))
        }
        3 => {
            let expr = interval_expr(rng, params, 2);
            format!("{expr} {} {}", rng.pick(OPS), literal(rng, "iv", params))
        }
        4 => {
            // Text output of intervals and of shifted timestamps.
            let expr = if rng.chance(50) {
                interval_expr(rng, params, 2)
            } else {
                format!("{} + {}", ts_col(rng), interval_expr(rng, params, 1))
            };
            match rng.below(3) {
                0 => format!("length(({expr})::text) {} {}", rng.pick(OPS), rng.below(30)),
                1 => format!(
                    "({expr})::text LIKE {}",
                    quote(rng.pick::<&str>(&[
                        "%day%", "%-%", "%+%", "%.%", "%mon%", "%year%", "%:00", "%-02-29%", "%BC",
                        "00:%"
                    ]))
                ),
                _ => format!(
                    "({expr})::text = {}",
                    quote(rng.pick::<&str>(&[
                        "1 day",
                        "00:00:00",
                        "2 days",
                        "-1 days",
                        "1 mon 15 days",
                        "12:00:00",
                        "1 day 12:00:00",
                    ]))
                ),
            }
        }
        // `date + 'literal'` is ambiguous in Postgres, so only timestamps here.
        5 => format!(
            "{} + {} {}",
            rng.pick(&["ts", "tsn"]),
            quote(rng.pick::<&str>(&["1 mon", "1 day", "-1 year", "P1M", "25 hours"])),
            match rng.below(2) {
                0 => format!("= {}", literal(rng, "ts", params)),
                _ => "IS NOT NULL".to_string(),
            }
        ),
        6 => format!(
            "{}(iv, {}) {} {}",
            rng.pick(&["greatest", "least", "coalesce"]),
            interval_expr(rng, params, 0),
            rng.pick(OPS),
            literal(rng, "iv", params)
        ),
        _ => format!(
            "iv {} {}",
            rng.pick(&["BETWEEN", "NOT BETWEEN"]),
            [literal(rng, "iv", params), literal(rng, "iv", params)].join(" AND ")
        ),
    }
}

/// A numeric expression over the number columns with arithmetic and bitwise operators,
/// including values that overflow, divide by zero or leave the float range. With `int_only`
/// the expression is an integer (so bitwise operators apply to it).
fn number_expr(rng: &mut Rng, params: &mut Vec<String>, depth: usize, int_only: bool) -> String {
    const INT_COLUMNS: &[&str] = &["i2", "i4", "i8"];
    const OTHER_COLUMNS: &[&str] = &["f", "f4", "n", "n"];
    if depth == 0 || rng.chance(30) {
        return match rng.below(6) {
            0 | 1 => rng.pick(INT_COLUMNS).to_string(),
            2 if !int_only => rng.pick(OTHER_COLUMNS).to_string(),
            4 if !int_only => rng
                .pick(&[
                    "0.5::float8",
                    "'2.5'::float8",
                    "1e10::float8",
                    "1.5",
                    "0.001",
                    "1e20",
                    "3.0",
                    "'1.5'::float4",
                ])
                .to_string(),
            5 => {
                params.push(rng.pick(&["0", "2", "-3", "32767"]).to_string());
                format!("${}::int2", params.len())
            }
            _ => rng
                .pick(&["0", "1", "2", "3", "-1", "7", "31", "33", "65", "100000"])
                .to_string(),
        };
    }
    let is_int = int_only || rng.chance(70);
    let mut side = |rng: &mut Rng| format!("({})", number_expr(rng, params, depth - 1, is_int));
    // The right operand is generated only where it is used, so every `$n` is referenced.
    match rng.below(10) {
        0..=4 => {
            let (l, r) = (side(rng), side(rng));
            format!("{l} {} {r}", rng.pick(&["+", "-", "*", "/"]))
        }
        5 if is_int => {
            let (l, r) = (side(rng), side(rng));
            let op = rng.pick(&["%", "&", "|", "#", "<<", ">>"]);
            // A shift count must be int4 (Postgres has no int8 count); cast it like a user would.
            if op.contains('<') || op.contains('>') {
                format!("{l} {op} {r}::int4")
            } else {
                format!("{l} {op} {r}")
            }
        }
        6 => format!("{}{}", rng.pick(&["-", "@ ", "+", "- "]), side(rng)),
        7 if is_int => format!("~{}", side(rng)),
        // `^` only on integers here: numeric power is not supported.
        8 if is_int && !int_only => format!(
            "{} ^ {}",
            side(rng),
            rng.pick(&["2", "0.5::float8", "-1", "3", "400"])
        ),
        9 if !int_only => format!("|/ {}", side(rng)),
        _ => {
            let (l, r) = (side(rng), side(rng));
            format!("{l} {} {r}", rng.pick(&["+", "-", "*"]))
        }
    }
}

/// Array operators, subscripts and functions over the array columns.
fn array_leaf(rng: &mut Rng, params: &mut Vec<String>) -> String {
    let int_array = |rng: &mut Rng, params: &mut Vec<String>| match rng.below(4) {
        0 => "ia".to_string(),
        1 => {
            params.push(
                rng.pick(&["{1,42}", "{}", "{7,NULL}", "{2147483647}"])
                    .to_string(),
            );
            format!("${}", params.len())
        }
        2 => format!("ARRAY[{}, i4]", rng.pick(&["1", "42", "NULL", "i2"])),
        _ => quote(rng.pick::<&str>(&["{1,42}", "{}", "{7,NULL}", "{{1,2},{3,4}}"])),
    };
    match rng.below(9) {
        0 | 1 => {
            let scalar = rng.pick(&["i4", "i8", "i2", "f", "n", "42", "$"]);
            let scalar = if *scalar == "$" {
                params.push("7".to_string());
                format!("${}", params.len())
            } else {
                scalar.to_string()
            };
            let quantifier = rng.pick(&["ANY", "ALL", "SOME"]);
            format!(
                "{scalar} {} {quantifier}({})",
                rng.pick(OPS),
                int_array(rng, params)
            )
        }
        2 if rng.chance(50) => {
            // Array input forms users write: spacing, quoting, escapes, NULL spellings. Inline
            // literals are also evaluated by Postgres as written, which checks our parser.
            let literal = *rng.pick(&[
                r#"{ a , "b c" ,NULL}"#,
                r#"{"", z, null}"#,
                r#"{ab\ ,\"q,it's}"#,
                r#"{"\\slash",École , abc }"#,
                r#"[2:3]={a,A}"#,
                r#"{{a,b},{"c",d}}"#,
                "{}",
                r#"{"a\"b",  x y  ,"NULL"}"#,
            ]);
            let array = if rng.chance(70) {
                quote(literal)
            } else {
                params.push(literal.to_string());
                format!("${}", params.len())
            };
            format!(
                "{} {} {}({array})",
                rng.pick(&["t", "'a'", "'NULL'", "'b c'", "'ab '", "'x y'", "'a\"b'"]),
                rng.pick(&["=", "<>", "<", ">="]),
                rng.pick(&["ANY", "ALL"]),
            )
        }
        2 => format!(
            "{} {} ANY(ta)",
            rng.pick(&["t", "'a'", "'NULL'", "'b c'"]),
            rng.pick(&["=", "<>", "<"])
        ),
        3 => format!(
            "{} {} {}",
            rng.pick(&["ia", "ARRAY[42, i4]", "ARRAY[i4]", "'{1,2}'::int4[]"]),
            rng.pick(&["@>", "<@", "&&"]),
            int_array(rng, params)
        ),
        4 => format!(
            "ta {} {}",
            rng.pick(&["@>", "<@", "&&"]),
            rng.pick(&[
                "ARRAY['a']",
                "'{z,\"\"}'",
                "ta",
                "'{}'",
                "ARRAY[t]",
                "'{\"a,b\"}'"
            ])
        ),
        5 if rng.chance(30) => {
            let (lhs, rhs) = if rng.chance(60) {
                let rhs = rng.pick(&[
                    "ia",
                    "'{1,2,3}'",
                    "'{{1,2},{3,4}}'",
                    "'[0:2]={7,8,9}'",
                    "ARRAY[42]",
                    "'{NULL,42}'",
                    "'{}'",
                ]);
                (*rng.pick(&["ia", "ARRAY[i4, 42]"]), *rhs)
            } else {
                let rhs = rng.pick(&["ta", "ARRAY['a']", "'{\"\",z}'", "'{{a,b},{c,d}}'"]);
                ("ta", *rhs)
            };
            format!("{lhs} {} {rhs}", rng.pick(&["=", "<>", "!="]))
        }
        5 => format!(
            "{} {} {}",
            rng.pick(&["ia[1]", "ia[2]", "ia[0]", "ia[1][2]", "ia[i2]", "ia[4]"]),
            rng.pick(OPS),
            rng.pick(&["1", "42", "i4", "8"])
        ),
        6 => format!(
            "{} {} {}",
            rng.pick(&["ta[1]", "ta[2]", "ta[2][1]", "ta[3]"]),
            rng.pick(OPS),
            quote(rng.pick::<&str>(TEXTS))
        ),
        7 => format!(
            "{} {} {}",
            rng.pick(&[
                "array_length(ia, 1)",
                "array_length(ia, 2)",
                "cardinality(ia)",
                "cardinality(ta)",
                "array_length(ta, 1)",
                "array_ndims(ia)",
                "array_ndims(ta)"
            ]),
            rng.pick(OPS),
            rng.below(4)
        ),
        _ => format!(
            "(ia{}) IS {}NULL",
            rng.pick(&["[1]", "[2]", ""]),
            rng.pick(&["", "NOT "])
        ),
    }
}

/// String operators and functions, and the conditional expressions.
fn text_leaf(rng: &mut Rng, params: &mut Vec<String>) -> String {
    let word = |rng: &mut Rng| quote(rng.pick::<&str>(TEXTS));
    match rng.below(12) {
        0 => format!("t || {} = {}", word(rng), word(rng)),
        1 => {
            let other = rng.pick(&["i4", "b", "n", "f", "d", "ts", "u", "i2", "f4", "'x'"]);
            let pattern = rng.pick(&["%4%", "a%", "%t%", "%-%", "%", "%e%"]);
            format!("t || {other} LIKE {}", quote(pattern))
        }
        2 => format!(
            "{}(t) {} {}",
            rng.pick(&["lower", "upper"]),
            rng.pick(OPS),
            word(rng)
        ),
        3 => format!("lower(t) = {}(t)", rng.pick(&["upper", "lower"])),
        4 => format!(
            "{}(t) {} {}",
            rng.pick(&["length", "char_length", "octet_length"]),
            rng.pick(OPS),
            rng.below(5)
        ),
        5 => {
            let args: Vec<&str> = (0..1 + rng.below(3))
                .map(|_| *rng.pick(&["t", "i4", "b", "NULL", "'-'", "d", "f", "n"]))
                .collect();
            let pattern = rng.pick(&["%4%", "a%", "%t%", "%-%", "%", "%e%", ""]);
            format!("concat({}) LIKE {}", args.join(", "), quote(pattern))
        }
        6 => format!(
            "coalesce({}, {}) {} {}",
            rng.pick(&["i4", "i2", "i8"]),
            rng.pick(&["i8", "i4", "0", "NULL"]),
            rng.pick(OPS),
            literal(rng, "i4", params)
        ),
        7 => format!("coalesce(b, {})", rng.pick(&["true", "false", "NULL", "b"])),
        8 => format!(
            "{}(i4, i2, {}) {} 42",
            rng.pick(&["greatest", "least"]),
            rng.pick(&["0", "NULL", "i8", "100"]),
            rng.pick(OPS)
        ),
        9 => format!(
            "{}(d, ts) {} {}",
            rng.pick(&["greatest", "least", "coalesce"]),
            rng.pick(OPS),
            literal(rng, "ts", params)
        ),
        10 if rng.chance(50) => format!(
            "{} {} {}",
            rng.pick(&[
                "octet_length(c)",
                "length(c)",
                "char_length(c)",
                "length(c || '|')",
                "octet_length(c || t)",
                "length(concat(c, '|'))"
            ]),
            rng.pick(OPS),
            rng.below(6)
        ),
        10 => format!("starts_with(t, {})", word(rng)),
        _ => format!(
            "{}(t, {}) {} {}",
            rng.pick(&["greatest", "least", "coalesce"]),
            word(rng),
            rng.pick(OPS),
            word(rng)
        ),
    }
}

fn clause(rng: &mut Rng, depth: usize, params: &mut Vec<String>) -> String {
    if depth == 0 || rng.chance(35) {
        let base = leaf(rng, params);
        return match rng.below(10) {
            0 => format!(
                "({base}) IS {}",
                rng.pick(&[
                    "TRUE",
                    "NOT TRUE",
                    "FALSE",
                    "NOT FALSE",
                    "UNKNOWN",
                    "NOT UNKNOWN"
                ])
            ),
            1 => format!("NOT ({base})"),
            _ => base,
        };
    }
    let l = clause(rng, depth - 1, params);
    let r = clause(rng, depth - 1, params);
    format!("({l}) {} ({r})", rng.pick(&["AND", "OR"]))
}

fn columns() -> Vec<ColumnType> {
    let mut out = vec![ColumnType {
        name: "id".into(),
        type_name: "int4".into(),
        is_array: false,
        is_enum: false,
    }];
    out.extend(COLUMNS.iter().map(|(name, sql_type, typname)| ColumnType {
        name: (*name).into(),
        type_name: (*typname).into(),
        is_array: sql_type.ends_with("[]"),
        is_enum: false,
    }));
    out
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Reads every row back in the text forms pgoutput would send (bool as `t`/`f`).
fn fetch_rows(db: &testkit::TestDb<'_>) -> Vec<Vec<Option<Vec<u8>>>> {
    let mut select = vec!["coalesce(encode(convert_to(id::text, 'UTF8'), 'hex'), 'N')".to_string()];
    for (name, ..) in COLUMNS {
        let text = if *name == "b" {
            "CASE WHEN b THEN 't' WHEN NOT b THEN 'f' END".to_string()
        } else if *name == "c" {
            // The output function keeps char(n) padding (`::text` would trim it).
            "CASE WHEN c IS NOT NULL THEN concat(c) END".to_string()
        } else {
            format!("{name}::text")
        };
        select.push(format!(
            "coalesce(encode(convert_to({text}, 'UTF8'), 'hex'), 'N')"
        ));
    }
    let sql = format!(
        "{SESSION}SELECT {} FROM items ORDER BY id",
        select.join(", ")
    );
    db.rows(&sql)
        .expect("fetch rows")
        .into_iter()
        .map(|row| {
            row.iter()
                .map(|cell| (cell != "N").then(|| unhex(cell)))
                .collect()
        })
        .collect()
}

/// Evaluates a clause over all rows. When Postgres raises an error for some row (an integer
/// overflow, a division by zero), the rows are evaluated one by one and an erroring row is
/// reported with a NULL result: such a row is not in the shape. A clause Postgres cannot even
/// plan is reported as row -1 (skipped).
const EVAL_FUNCTION: &str = r#"
CREATE FUNCTION ev(k int, q text) RETURNS TABLE(key int, row_id int, result bool)
LANGUAGE plpgsql AS $fn$
DECLARE
  ids int[];
  results bool[];
  r int;
  v bool;
BEGIN
  BEGIN
    EXECUTE format('SELECT array_agg(id ORDER BY id), array_agg((%s) IS TRUE ORDER BY id) FROM items', q)
      INTO ids, results;
    RETURN QUERY SELECT k, u.i, u.v FROM unnest(ids, results) AS u(i, v);
    RETURN;
  EXCEPTION WHEN OTHERS THEN NULL;
  END;
  BEGIN
    EXECUTE format('EXPLAIN SELECT (%s) IS TRUE FROM items', q);
  EXCEPTION WHEN OTHERS THEN
    RETURN QUERY SELECT k, -1, NULL::bool;
    RETURN;
  END;
  FOR r IN SELECT id FROM items ORDER BY id LOOP
    BEGIN
      EXECUTE format('SELECT (%s) IS TRUE FROM items WHERE id = $1', q) INTO v USING r;
    EXCEPTION WHEN OTHERS THEN
      v := NULL;
    END;
    key := k; row_id := r; result := v;
    RETURN NEXT;
  END LOOP;
END
$fn$;
"#;

struct Case {
    clause: String,
    params: Vec<String>,
    rendered: String,
    predicate: protocol::where_clause::Predicate,
}

/// For each row, the cases (by index) the router sends it to, with every case a shape.
fn route_rows(cases: &[Case], table: &[Vec<Option<Vec<u8>>>]) -> Vec<HashSet<u64>> {
    let mut router = Router::new();
    for (id, case) in cases.iter().enumerate() {
        router.insert(id as u64, Some(&case.predicate));
    }
    table
        .iter()
        .map(|row| {
            let mut out = Vec::new();
            router.route(&|c| row.get(c).and_then(|v| v.as_deref()), &mut out);
            let set: HashSet<u64> = out.iter().copied().collect();
            assert_eq!(set.len(), out.len(), "the router repeated a shape");
            set
        })
        .collect()
}

#[test]
fn eval_and_to_sql_agree_with_postgres() {
    let cluster = testkit::Cluster::start().expect("start Postgres");
    let db = cluster.create_database().expect("create database");
    let mut rng = Rng(std::env::var("WHERE_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        // xorshift never leaves 0.
        .filter(|seed| *seed != 0)
        .unwrap_or(SEED));

    let column_defs: Vec<String> = COLUMNS.iter().map(|(n, t, _)| format!("{n} {t}")).collect();
    let rows: Vec<String> = (0..ROWS).map(|id| random_row(&mut rng, id)).collect();
    db.psql(&format!(
        "{SESSION}CREATE TABLE items (id int4 PRIMARY KEY, {});\nINSERT INTO items VALUES {};\n{EVAL_FUNCTION}",
        column_defs.join(", "),
        rows.join(",\n")
    ))
    .expect("create table");
    let table = fetch_rows(&db);
    assert_eq!(table.len(), ROWS);

    let cols = columns();
    let clauses = std::env::var("WHERE_DIFF_CLAUSES")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(CLAUSES);
    let mut cases = Vec::with_capacity(clauses);
    while cases.len() < clauses {
        let mut params = Vec::new();
        let depth = rng.below(3);
        let text = clause(&mut rng, depth, &mut params);
        match parse(&text, &params, &cols) {
            Ok(predicate) => cases.push(Case {
                rendered: predicate.to_sql(),
                clause: text,
                params,
                predicate,
            }),
            Err(e) => {
                // Generated clauses are valid Postgres except for literals Postgres would
                // also reject (such as an int4 column compared with '3000000000').
                let message = e.to_string();
                assert!(
                    message.contains("out of range")
                        || message.contains("invalid input syntax")
                        || message.contains("constant subexpression raised an error"),
                    "rejected {text:?} {params:?}: {message}"
                );
            }
        }
    }

    let routed = route_rows(&cases, &table);
    let (mut compared, mut skipped, mut failures) = (0usize, 0usize, Vec::new());
    let mut row_errors = 0usize;
    for (batch_index, batch) in cases.chunks(BATCH).enumerate() {
        let mut sql = String::from(SESSION);
        for (i, case) in batch.iter().enumerate() {
            let key = i * 2;
            sql.push_str(&format!(
                "SELECT * FROM ev({key}, {});\n",
                quote(&case.rendered)
            ));
            if case.params.is_empty() {
                sql.push_str(&format!(
                    "SELECT * FROM ev({}, {});\n",
                    key + 1,
                    quote(&case.clause)
                ));
            }
        }
        let output = db.rows(&sql).expect("evaluate batch");
        let mut results = vec![vec![None; ROWS]; batch.len() * 2];
        let mut errored = vec![false; batch.len() * 2];
        for line in output {
            let key: usize = line[0].parse().expect("key");
            let row: i64 = line[1].parse().expect("row id");
            if row < 0 {
                errored[key] = true;
            } else {
                // An empty result is NULL: Postgres raised an error for this row alone.
                if line[2].is_empty() && key.is_multiple_of(2) {
                    row_errors += 1;
                }
                results[key][row as usize] = Some(line[2] == "t");
            }
        }
        for (i, case) in batch.iter().enumerate() {
            if errored[i * 2] || errored[i * 2 + 1] {
                skipped += 1;
                continue;
            }
            for (row_id, row) in table.iter().enumerate() {
                let ours = case.predicate.eval(&|c| row[c].as_deref());
                let via_rendered = results[i * 2][row_id];
                let via_clause = results[i * 2 + 1][row_id];
                let expected = via_clause.or(via_rendered);
                let by_router = routed[row_id].contains(&((batch_index * BATCH + i) as u64));
                let agree = Some(ours) == via_rendered
                    && (via_clause.is_none() || via_clause == via_rendered)
                    && by_router == ours;
                if !agree && failures.len() < 30 {
                    let shown: Vec<String> = row
                        .iter()
                        .zip(&cols)
                        .map(|(v, c)| {
                            format!("{}={:?}", c.name, v.as_deref().map(String::from_utf8_lossy))
                        })
                        .collect();
                    failures.push(format!(
                        "batch {batch_index}: clause {:?} params {:?}\n  rendered {}\n  ours={ours} router={by_router} postgres(rendered)={via_rendered:?} postgres(clause)={via_clause:?} expected={expected:?}\n  row {}",
                        case.clause, case.params, case.rendered, shown.join(" ")
                    ));
                }
                compared += 1;
            }
        }
    }
    eprintln!(
        "compared {compared} clause×row pairs over {} clauses ({skipped} skipped: Postgres \
         rejected the clause; {row_errors} rows where evaluation raised an error)",
        cases.len()
    );
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        cases.len() - skipped >= clauses * 5 / 6,
        "too many skipped clauses: {skipped}"
    );
}
