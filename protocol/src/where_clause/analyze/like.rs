//! LIKE / ILIKE clauses with a constant pattern, as the router groups them: the shapes whose
//! clause reads the same string (the same source expression, such as `name` or `lower(name)`,
//! with the same case sensitivity) evaluate that string once per row, and each pattern is
//! reduced to what it asks of the string: equal to, starting with, ending with or containing a
//! literal, or (for anything else) containing its longest literal fragment and then matching.
//!
//! ILIKE compares characters `a`, `b` as equal exactly when `ilike_fold(a) == ilike_fold(b)`
//! (see `like`), and folding maps one character to one character, so an ILIKE pattern of
//! literals and `%` holds exactly when the same test holds between the folded string and the
//! folded literal. UTF-8 is self-synchronizing, so a byte search for a valid UTF-8 literal in a
//! valid UTF-8 string only finds it at character boundaries: byte tests are character tests.

use std::borrow::Cow;

use super::super::datum::Datum;
use super::super::eval::{self, Row};
use super::super::expr::Expr;
use super::super::like;
use super::ilike_fold;

/// Literals (and fragments) longer than this many bytes are cut to it, and the pattern is then
/// confirmed by the matcher: bounds the router's tables and automata per pattern.
pub(crate) const LITERAL_MAX: usize = 256;

/// What a pattern asks of the (folded, for ILIKE) string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PatternKind {
    /// No wildcard: the string equals the literal.
    Equals(Box<str>),
    /// `literal%`.
    StartsWith(Box<str>),
    /// `%literal`.
    EndsWith(Box<str>),
    /// `%literal%`.
    Contains(Box<str>),
    /// Only `%`: every string.
    Any,
    /// Anything else: the string contains `fragment` (empty when the pattern has no literal),
    /// and the whole pattern must then be checked with the matcher.
    General { fragment: Box<str> },
}

/// A constant pattern, classified, with its text for confirmation.
#[derive(Clone, Debug)]
pub(crate) struct LikePattern {
    pub(crate) kind: PatternKind,
    text: Box<str>,
    case_insensitive: bool,
}

impl LikePattern {
    /// Whether the full pattern matches `text` (the source's value, not folded).
    pub(crate) fn confirm(&self, text: &str) -> bool {
        like::matches(text, &self.text, self.case_insensitive) == Ok(true)
    }

    /// Rough number of rows it tends to hit, for choosing among the conjuncts of an AND.
    pub(crate) fn cost(&self) -> u64 {
        match &self.kind {
            PatternKind::Equals(_) => 1,
            PatternKind::StartsWith(_) | PatternKind::EndsWith(_) => 8,
            PatternKind::Contains(_) => 12,
            PatternKind::General { fragment } if !fragment.is_empty() => 30,
            PatternKind::General { .. } | PatternKind::Any => 1000,
        }
    }
}

/// `source [I]LIKE 'pattern'` where the source reads the row.
#[derive(Clone, Debug)]
pub(crate) struct LikeTerm {
    /// Equal for two terms exactly when their sources are the same expression (structurally,
    /// implicit casts and types included) with the same case sensitivity.
    signature: String,
    source: Expr,
    case_insensitive: bool,
    /// `NOT LIKE`: TRUE for the members whose pattern does not match.
    pub(crate) negated: bool,
    pub(crate) pattern: LikePattern,
}

/// The source's string for one row: as evaluated, and folded for ILIKE (the same for LIKE).
pub(crate) struct LikeValue<'a> {
    pub(crate) text: Cow<'a, str>,
    pub(crate) folded: Option<String>,
}

impl LikeValue<'_> {
    pub(crate) fn folded(&self) -> &str {
        self.folded.as_deref().unwrap_or(&self.text)
    }
}

/// The predicate's LIKE term, if the whole clause is one (see [`like_term`]), or a `NOT LIKE`
/// of the same form (the term is then `negated`: TRUE where the pattern does not match a
/// non-null string).
pub(crate) fn like_of(predicate: &super::super::Predicate) -> Option<LikeTerm> {
    like_term(&predicate.expr).or_else(|| term(&predicate.expr, true))
}

/// The clause's LIKE term, if it is a non-negated `[I]LIKE` of a row-dependent string with a
/// constant, valid pattern.
pub(crate) fn like_term(expr: &Expr) -> Option<LikeTerm> {
    term(expr, false)
}

fn term(expr: &Expr, negated: bool) -> Option<LikeTerm> {
    let Expr::Like {
        arg,
        pattern,
        negated: is_negated,
        case_insensitive,
    } = expr
    else {
        return None;
    };
    if *is_negated != negated {
        return None;
    }
    let Expr::Const {
        value: Datum::Text(pattern),
        ..
    } = pattern.as_ref()
    else {
        return None;
    };
    let mut reads_row = false;
    arg.for_each_column(&mut |_| reads_row = true);
    if !reads_row {
        return None;
    }
    let kind = classify(pattern, *case_insensitive)?;
    let signature = format!("{negated}\0{case_insensitive}\0{arg:?}");
    Some(LikeTerm {
        signature,
        source: arg.as_ref().clone(),
        case_insensitive: *case_insensitive,
        negated,
        pattern: LikePattern {
            kind,
            text: pattern.as_ref().into(),
            case_insensitive: *case_insensitive,
        },
    })
}

impl LikeTerm {
    pub(crate) fn signature(&self) -> &str {
        &self.signature
    }

    /// The source's string for this row; `None` when it is NULL, not a string, or failed (no
    /// pattern of the group can then be TRUE, as in `eval`).
    pub(crate) fn evaluate<'a, 'r: 'a>(&'a self, row: &Row<'r>) -> Option<LikeValue<'a>> {
        let Ok(Datum::Text(text)) = eval::eval(&self.source, row) else {
            return None;
        };
        let folded = self
            .case_insensitive
            .then(|| text.chars().map(ilike_fold).collect());
        Some(LikeValue { text, folded })
    }
}

enum Token {
    Literal(char),
    One,
    Many,
}

/// What `pattern` asks of a string; `None` if it ends in a lone escape (evaluation fails).
pub(crate) fn classify(pattern: &str, case_insensitive: bool) -> Option<PatternKind> {
    let mut tokens = Vec::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '%' => Token::Many,
            '_' => Token::One,
            '\\' => Token::Literal(chars.next()?),
            other => Token::Literal(other),
        });
    }
    let fold = |c: char| if case_insensitive { ilike_fold(c) } else { c };
    // Literal runs, and whether any `_` occurs or `%` sits between literals.
    let mut runs: Vec<String> = vec![String::new()];
    for token in &tokens {
        match token {
            Token::Literal(c) => runs.last_mut().expect("one run").push(fold(*c)),
            Token::One | Token::Many => {
                if !runs.last().expect("one run").is_empty() {
                    runs.push(String::new());
                }
            }
        }
    }
    runs.retain(|r| !r.is_empty());
    let has_one = tokens.iter().any(|t| matches!(t, Token::One));
    let leading = matches!(tokens.first(), Some(Token::Many));
    let trailing = matches!(tokens.last(), Some(Token::Many));
    let kind = match (has_one, runs.len(), leading, trailing) {
        (false, 0, _, _) if tokens.is_empty() => PatternKind::Equals("".into()),
        (false, 0, _, _) => PatternKind::Any,
        (false, 1, false, false) => PatternKind::Equals(runs.remove(0).into()),
        (false, 1, false, true) => PatternKind::StartsWith(runs.remove(0).into()),
        (false, 1, true, false) => PatternKind::EndsWith(runs.remove(0).into()),
        (false, 1, true, true) => PatternKind::Contains(runs.remove(0).into()),
        _ => {
            let longest = runs.into_iter().max_by_key(String::len).unwrap_or_default();
            return Some(PatternKind::General {
                fragment: cut(&longest).into(),
            });
        }
    };
    Some(bounded(kind))
}

/// A kind whose literal is longer than [`LITERAL_MAX`] becomes a general pattern searched by
/// the literal's start.
fn bounded(kind: PatternKind) -> PatternKind {
    match &kind {
        PatternKind::Equals(literal)
        | PatternKind::StartsWith(literal)
        | PatternKind::EndsWith(literal)
        | PatternKind::Contains(literal)
            if literal.len() > LITERAL_MAX =>
        {
            PatternKind::General {
                fragment: cut(literal).into(),
            }
        }
        _ => kind,
    }
}

/// The longest start of `literal` of at most [`LITERAL_MAX`] bytes, at a character boundary.
fn cut(literal: &str) -> &str {
    let mut end = literal.len().min(LITERAL_MAX);
    while !literal.is_char_boundary(end) {
        end -= 1;
    }
    &literal[..end]
}
