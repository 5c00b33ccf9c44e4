//! The cast phase of request validation: each known parameter is converted to its type, with
//! Ecto's rules (upstream validates with an Ecto embedded schema):
//!
//! - a string that is empty after trimming whitespace counts as absent (the default applies);
//! - a non-string value (Plug nested form) where a string is expected is `is invalid`;
//! - booleans accept exactly `true`/`false`/`1`/`0`; enums their exact lower-case names.
//!
//! All cast errors are collected together, which is the only phase where several fields can
//! fail in one response. Text is returned borrowed from the decoded parameters: the caller
//! copies only what the validated request keeps.

use crate::ident::{parse_columns, ZERO_LENGTH_LIST_ELEMENT_MESSAGE};
use crate::query_string::{QueryParams, Value};
use crate::validation::ValidationErrors;

pub(crate) const IS_INVALID: &str = "is invalid";

/// Ecto's `empty_trimmed_string?`: only strings can be "empty".
fn is_empty_value(value: &Value<'_>) -> bool {
    matches!(value, Value::String(s) if s.trim().is_empty())
}

/// The value of `field`, treating Ecto-empty values as absent.
fn present<'p, 'a>(params: &'p QueryParams<'a>, field: &str) -> Option<&'p Value<'a>> {
    params.get(field).filter(|value| !is_empty_value(value))
}

pub(crate) fn cast_string<'p>(
    params: &'p QueryParams<'_>,
    field: &str,
    errors: &mut ValidationErrors,
) -> Option<&'p str> {
    match present(params, field)? {
        Value::String(text) => Some(text),
        _ => {
            errors.add(field, IS_INVALID);
            None
        }
    }
}

/// Ecto `:boolean` cast of `value`, reporting failures under `field`; absent means `false`.
pub(crate) fn cast_bool_value(
    value: Option<&Value<'_>>,
    field: &str,
    errors: &mut ValidationErrors,
) -> bool {
    match value.filter(|value| !is_empty_value(value)) {
        None => false,
        Some(Value::String(text)) if text == "true" || text == "1" => true,
        Some(Value::String(text)) if text == "false" || text == "0" => false,
        Some(_) => {
            errors.add(field, IS_INVALID);
            false
        }
    }
}

pub(crate) fn cast_bool(
    params: &QueryParams<'_>,
    field: &str,
    errors: &mut ValidationErrors,
) -> bool {
    cast_bool_value(params.get(field), field, errors)
}

/// Upstream's `live` pre-processing on GET/POST: present with any value other than the string
/// `false` means true, so a bare `&live` is true.
pub(crate) fn truthy_unless_false(value: Option<&Value<'_>>) -> bool {
    match value {
        None => false,
        Some(Value::String(text)) => text != "false",
        Some(_) => true,
    }
}

/// Ecto.Enum cast: `allowed` maps accepted strings to values; absent gives `default`.
pub(crate) fn cast_enum<T: Copy>(
    params: &QueryParams<'_>,
    field: &str,
    allowed: &[(&str, T)],
    default: T,
    errors: &mut ValidationErrors,
) -> T {
    let Some(value) = present(params, field) else {
        return default;
    };
    let found = value
        .as_str()
        .and_then(|text| allowed.iter().find(|(name, _)| *name == text));
    match found {
        Some((_, variant)) => *variant,
        None => {
            errors.add(field, IS_INVALID);
            default
        }
    }
}

/// The `columns`/`queryable_columns` list type: a string is parsed as a comma list of
/// identifiers; the list form `columns[]=a&columns[]=b` is taken verbatim (only empty names are
/// rejected, as upstream does).
pub(crate) fn cast_columns(
    params: &QueryParams<'_>,
    field: &str,
    errors: &mut ValidationErrors,
) -> Option<Vec<String>> {
    let result = match present(params, field)? {
        Value::String(text) => parse_columns(text).map_err(|err| err.to_string()),
        Value::List(items) => list_of_names(items),
        Value::Map(_) => Err(IS_INVALID.to_owned()),
    };
    match result {
        Ok(columns) => Some(columns),
        Err(message) => {
            errors.add(field, message);
            None
        }
    }
}

fn list_of_names(items: &[Value<'_>]) -> Result<Vec<String>, String> {
    let mut names = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::String(name) if name.is_empty() => {
                return Err(ZERO_LENGTH_LIST_ELEMENT_MESSAGE.to_owned())
            }
            Value::String(name) => names.push(name.to_string()),
            _ => return Err(IS_INVALID.to_owned()),
        }
    }
    Ok(names)
}

/// `params`: must be a map of strings (`params[1]=a`); a plain string is invalid. Pairs in key
/// order.
pub(crate) fn cast_string_map<'p>(
    params: &'p QueryParams<'_>,
    field: &str,
    errors: &mut ValidationErrors,
) -> Vec<(&'p str, &'p str)> {
    let Some(value) = present(params, field) else {
        return Vec::new();
    };
    let Value::Map(entries) = value else {
        errors.add(field, IS_INVALID);
        return Vec::new();
    };
    let mut strings = Vec::with_capacity(entries.len());
    for (key, entry) in entries {
        let Value::String(text) = entry else {
            errors.add(field, IS_INVALID);
            return Vec::new();
        };
        strings.push((key.as_ref(), text.as_ref()));
    }
    strings
}
