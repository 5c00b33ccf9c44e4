//! Canonical SQL for a typed expression: fully parenthesized, identifiers always quoted,
//! constants (including `$n` parameters) inlined as typed literals such as `'5'::int4`.
//!
//! Only fixed keywords, operators from a closed set, quoted identifiers and escaped literals
//! are ever emitted, so nothing in a clause or a parameter can reach the output as SQL.
//! Implicit casts are left to Postgres, which applies the same ones.

use super::cast::to_text;
use super::datum::Datum;
use super::expr::Expr;
use super::types::Type;

pub(crate) fn render(expr: &Expr, out: &mut String) {
    match expr {
        Expr::Const { value, ty } => render_const(value, ty, out),
        Expr::Column { name, .. } => quote_identifier(name, out),
        Expr::Sublink {
            lhs, select_sql, ..
        } => {
            out.push('(');
            if lhs.len() > 1 {
                out.push('(');
            }
            for (i, c) in lhs.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                quote_identifier(&c.name, out);
            }
            if lhs.len() > 1 {
                out.push(')');
            }
            out.push_str(" IN (");
            out.push_str(select_sql);
            out.push_str("))");
        }
        Expr::Cast {
            arg,
            implicit: true,
            ..
        } => render(arg, out),
        Expr::Cast { arg, to, .. } => {
            out.push_str("CAST(");
            render(arg, out);
            out.push_str(" AS ");
            out.push_str(to.typname());
            out.push(')');
        }
        Expr::Compare { op, lhs, rhs, .. } => binary(lhs, op.sql(), rhs, out),
        Expr::Distinct {
            negated, lhs, rhs, ..
        } => {
            let op = if *negated {
                "IS NOT DISTINCT FROM"
            } else {
                "IS DISTINCT FROM"
            };
            binary(lhs, op, rhs, out);
        }
        Expr::And(items) => junction(items, " AND ", out),
        Expr::Or(items) => junction(items, " OR ", out),
        Expr::Not(arg) => {
            out.push_str("(NOT ");
            render(arg, out);
            out.push(')');
        }
        Expr::NullTest { arg, negated } => {
            out.push('(');
            render(arg, out);
            out.push_str(if *negated {
                " IS NOT NULL)"
            } else {
                " IS NULL)"
            });
        }
        Expr::BoolTest { arg, test } => {
            out.push('(');
            render(arg, out);
            out.push(' ');
            out.push_str(test.sql());
            out.push(')');
        }
        Expr::Like {
            arg,
            pattern,
            negated,
            case_insensitive,
        } => {
            let op = match (negated, case_insensitive) {
                (false, false) => "LIKE",
                (true, false) => "NOT LIKE",
                (false, true) => "ILIKE",
                (true, true) => "NOT ILIKE",
            };
            binary(arg, op, pattern, out);
        }
        Expr::In {
            arg,
            items,
            negated,
        } => {
            out.push('(');
            render(arg, out);
            out.push_str(if *negated { " NOT IN (" } else { " IN (" });
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render(item, out);
            }
            out.push_str("))");
        }
        Expr::Arith { op, lhs, rhs, .. } => binary(lhs, op.sql(), rhs, out),
        Expr::Unary { op, arg, .. } => {
            out.push('(');
            out.push_str(op.sql());
            out.push(' ');
            render(arg, out);
            out.push(')');
        }
        Expr::Concat { lhs, rhs } => binary(lhs, "||", rhs, out),
        Expr::AnyAll {
            op,
            all,
            arg,
            array,
            ..
        } => {
            out.push('(');
            render(arg, out);
            out.push(' ');
            out.push_str(op.sql());
            out.push_str(if *all { " ALL (" } else { " ANY (" });
            render(array, out);
            out.push_str("))");
        }
        Expr::ArrayOp { op, lhs, rhs } => binary(lhs, op.sql(), rhs, out),
        Expr::Subscript {
            arg, subscripts, ..
        } => {
            out.push('(');
            render(arg, out);
            out.push(')');
            for subscript in subscripts {
                out.push('[');
                render(subscript, out);
                out.push(']');
            }
        }
        Expr::ArrayCtor { items, .. } => {
            out.push_str("ARRAY[");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render(item, out);
            }
            out.push(']');
        }
        Expr::Func { func, args, .. } => {
            out.push_str(func.sql());
            out.push('(');
            for (i, arg) in args.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                render(arg, out);
            }
            out.push(')');
        }
    }
}

fn binary(lhs: &Expr, op: &str, rhs: &Expr, out: &mut String) {
    out.push('(');
    render(lhs, out);
    out.push(' ');
    out.push_str(op);
    out.push(' ');
    render(rhs, out);
    out.push(')');
}

fn junction(items: &[Expr], separator: &str, out: &mut String) {
    out.push('(');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(separator);
        }
        render(item, out);
    }
    out.push(')');
}

fn render_const(value: &Datum<'static>, ty: &Type, out: &mut String) {
    // Enum labels stay untyped literals: Postgres types them from the column, and the enum's
    // schema need not be on the search path.
    let (is_enum, suffix) = match ty {
        Type::Enum(_) => (true, ""),
        Type::Array(elem) => (matches!(elem.as_ref(), Type::Enum(_)), "[]"),
        _ => (false, ""),
    };
    if value.is_null() {
        out.push_str("NULL");
    } else {
        quote_literal(&to_text(value.reborrow(), ty), out);
    }
    if !is_enum {
        out.push_str("::");
        match ty {
            Type::Array(elem) => out.push_str(elem.typname()),
            other => out.push_str(other.typname()),
        }
        out.push_str(suffix);
    }
}

/// A string literal that reads back identically whatever `standard_conforming_strings` is:
/// quotes are doubled, and text with backslashes uses the `E''` form with them doubled.
pub(crate) fn quote_literal(text: &str, out: &mut String) {
    if text.contains('\\') {
        out.push('E');
    }
    out.push('\'');
    for c in text.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
}

pub(crate) fn quote_identifier(name: &str, out: &mut String) {
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
}
