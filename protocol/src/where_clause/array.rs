//! Postgres arrays in text form (`{1,2,"a b",NULL}`, `{{1,2},{3,4}}`, `[0:1]={5,6}`):
//! parsing (`array_in`) into elements of a supported element type, and output (`array_out`).
//!
//! Elements that need no unescaping borrow from the input, so reading an int or text array
//! from a row allocates only the element vector.

use super::cast::to_text;
use super::datum::Datum;
use super::input::{self, InputError};
use super::types::Type;

/// Postgres's `MAXDIM`: arrays have at most six dimensions.
pub(crate) const DIMS_MAX: usize = 6;

/// An array value: its elements in row-major order and, per dimension, the lower bound and
/// length. An empty array has no dimensions.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ArrayDatum<'a> {
    pub(crate) elems: Vec<Datum<'a>>,
    pub(crate) dims: Vec<(i32, i32)>,
}

impl ArrayDatum<'_> {
    pub(crate) fn reborrow(&self) -> ArrayDatum<'_> {
        ArrayDatum {
            elems: self.elems.iter().map(Datum::reborrow).collect(),
            dims: self.dims.clone(),
        }
    }

    pub(crate) fn into_owned(self) -> ArrayDatum<'static> {
        ArrayDatum {
            elems: self.elems.into_iter().map(Datum::into_owned).collect(),
            dims: self.dims,
        }
    }
}

fn malformed(text: &str, detail: &str) -> InputError {
    InputError(format!("malformed array literal: \"{text}\" ({detail})"))
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Parses an array of `elem` from its text form.
pub(crate) fn parse<'a>(elem: &Type, text: &'a str) -> Result<ArrayDatum<'a>, InputError> {
    let bytes = text.as_bytes();
    let mut at = 0;
    while at < bytes.len() && is_space(bytes[at]) {
        at += 1;
    }
    let mut declared: Vec<(i32, i32)> = Vec::new();
    while bytes.get(at) == Some(&b'[') {
        if declared.len() == DIMS_MAX {
            return Err(malformed(text, "too many dimensions"));
        }
        let close = text[at..]
            .find(']')
            .map(|p| at + p)
            .ok_or_else(|| malformed(text, "missing \"]\""))?;
        let spec = &text[at + 1..close];
        let (lower, upper) = match spec.split_once(':') {
            Some((l, u)) => (l.trim(), u.trim()),
            None => ("1", spec.trim()),
        };
        let lower: i32 = lower.parse().map_err(|_| malformed(text, "bad bound"))?;
        let upper: i32 = upper.parse().map_err(|_| malformed(text, "bad bound"))?;
        let length = i64::from(upper) - i64::from(lower) + 1;
        let length = i32::try_from(length)
            .ok()
            .filter(|l| *l >= 0)
            .ok_or_else(|| malformed(text, "upper bound below lower bound"))?;
        declared.push((lower, length));
        at = close + 1;
    }
    if !declared.is_empty() {
        if bytes.get(at) != Some(&b'=') {
            return Err(malformed(text, "missing \"=\" after dimensions"));
        }
        at += 1;
        while at < bytes.len() && is_space(bytes[at]) {
            at += 1;
        }
    }
    if bytes.get(at) != Some(&b'{') {
        return Err(malformed(text, "array value must start with \"{\""));
    }
    let mut parser = Parser {
        text,
        elem,
        at,
        elems: Vec::new(),
        lengths: [0; DIMS_MAX],
        leaf_depth: None,
    };
    parser.level(0)?;
    while parser.at < bytes.len() && is_space(bytes[parser.at]) {
        parser.at += 1;
    }
    if parser.at != bytes.len() {
        return Err(malformed(text, "junk after closing right brace"));
    }
    let ndims = parser.leaf_depth.map_or(0, |d| d + 1);
    let lengths = &parser.lengths[..ndims];
    let elems = parser.elems;
    if elems.is_empty() {
        if declared.iter().any(|(_, len)| *len != 0) {
            return Err(malformed(text, "dimensions do not match the value"));
        }
        return Ok(ArrayDatum {
            elems,
            dims: Vec::new(),
        });
    }
    let dims = if declared.is_empty() {
        lengths.iter().map(|&len| (1, len)).collect()
    } else {
        let matches = declared.len() == lengths.len()
            && declared.iter().zip(lengths).all(|((_, d), l)| d == l);
        if !matches {
            return Err(malformed(text, "dimensions do not match the value"));
        }
        declared
    };
    Ok(ArrayDatum { elems, dims })
}

struct Parser<'a, 't> {
    text: &'a str,
    elem: &'t Type,
    at: usize,
    elems: Vec<Datum<'a>>,
    /// The length of each nesting level seen so far (all sub-arrays must agree); 0 = unseen.
    lengths: [i32; DIMS_MAX],
    /// The depth at which elements (not sub-arrays) appear; the same for every sub-array.
    leaf_depth: Option<usize>,
}

impl<'a> Parser<'a, '_> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn skip_space(&mut self) {
        while self.at < self.bytes().len() && is_space(self.bytes()[self.at]) {
            self.at += 1;
        }
    }

    /// Parses `{...}` at nesting `depth`, starting at its `{`.
    fn level(&mut self, depth: usize) -> Result<(), InputError> {
        if depth >= DIMS_MAX {
            return Err(malformed(self.text, "too many dimensions"));
        }
        self.at += 1;
        self.skip_space();
        let mut count: i32 = 0;
        let mut nested: Option<bool> = None;
        if self.bytes().get(self.at) == Some(&b'}') {
            self.at += 1;
            // `{}` is only valid as the whole (empty) array.
            return if depth == 0 {
                Ok(())
            } else {
                Err(malformed(self.text, "empty sub-array"))
            };
        }
        loop {
            self.skip_space();
            let is_nested = self.bytes().get(self.at) == Some(&b'{');
            if *nested.get_or_insert(is_nested) != is_nested {
                return Err(malformed(self.text, "mixed elements and sub-arrays"));
            }
            if is_nested {
                self.level(depth + 1)?;
            } else {
                self.element()?;
            }
            count = count.saturating_add(1);
            self.skip_space();
            match self.bytes().get(self.at) {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    break;
                }
                _ => return Err(malformed(self.text, "unexpected character")),
            }
        }
        if nested == Some(false) && *self.leaf_depth.get_or_insert(depth) != depth {
            return Err(malformed(self.text, "sub-arrays of different depths"));
        }
        match self.lengths[depth] {
            0 => {
                self.lengths[depth] = count;
                Ok(())
            }
            len if len == count => Ok(()),
            _ => Err(malformed(self.text, "sub-arrays of different lengths")),
        }
    }

    /// One element: quoted, or unquoted up to `,` or `}` with outer whitespace trimmed.
    fn element(&mut self) -> Result<(), InputError> {
        let bytes = self.bytes();
        let start = self.at;
        let mut owned: Option<String> = None;
        let mut quoted = false;
        let mut escaped = false;
        // `end` is one past the last byte that belongs to the value (trailing spaces excluded).
        let mut end = start;
        let mut value_start = start;
        if bytes.get(self.at) == Some(&b'"') {
            quoted = true;
            self.at += 1;
            value_start = self.at;
            loop {
                match bytes.get(self.at) {
                    None => return Err(malformed(self.text, "unterminated quoted element")),
                    Some(b'"') => {
                        end = self.at;
                        self.at += 1;
                        break;
                    }
                    Some(b'\\') => {
                        let buf = owned
                            .get_or_insert_with(|| self.text[value_start..self.at].to_string());
                        let next = self.text[self.at + 1..]
                            .chars()
                            .next()
                            .ok_or_else(|| malformed(self.text, "unterminated quoted element"))?;
                        buf.push(next);
                        self.at += 1 + next.len_utf8();
                    }
                    Some(_) => {
                        let c = self.text[self.at..].chars().next().unwrap_or('\0');
                        if let Some(buf) = owned.as_mut() {
                            buf.push(c);
                        }
                        self.at += c.len_utf8();
                    }
                }
            }
        } else {
            loop {
                match bytes.get(self.at) {
                    None => return Err(malformed(self.text, "unexpected end of input")),
                    Some(b',' | b'}') => break,
                    Some(b'{' | b'"') => return Err(malformed(self.text, "unexpected character")),
                    Some(b'\\') => {
                        escaped = true;
                        let buf = owned.get_or_insert_with(|| self.text[start..end].to_string());
                        // Keep the spaces between the last kept byte and the escape.
                        buf.push_str(&self.text[end..self.at]);
                        let next = self.text[self.at + 1..]
                            .chars()
                            .next()
                            .ok_or_else(|| malformed(self.text, "unexpected end of input"))?;
                        buf.push(next);
                        self.at += 1 + next.len_utf8();
                        end = self.at;
                    }
                    Some(&b) => {
                        let c = self.text[self.at..].chars().next().unwrap_or('\0');
                        self.at += c.len_utf8();
                        if !is_space(b) {
                            if let Some(buf) = owned.as_mut() {
                                buf.push_str(&self.text[end..self.at]);
                            }
                            end = self.at;
                        }
                    }
                }
            }
            if end == start && !escaped {
                return Err(malformed(self.text, "empty element"));
            }
        }
        let value = match owned {
            Some(text) => input::parse(self.elem, &text)?.into_owned(),
            None => {
                let raw = &self.text[value_start..end];
                if !quoted && raw.eq_ignore_ascii_case("NULL") {
                    Datum::Null
                } else {
                    input::parse(self.elem, raw)?
                }
            }
        };
        self.elems.push(value);
        Ok(())
    }
}

/// `array_out`: the text form Postgres prints for an array of `elem`.
pub(crate) fn to_text_form(array: &ArrayDatum<'_>, elem: &Type) -> String {
    let mut out = String::new();
    if array.dims.is_empty() {
        out.push_str("{}");
        return out;
    }
    if array.dims.iter().any(|(lower, _)| *lower != 1) {
        for (lower, len) in &array.dims {
            let upper = i64::from(*lower) + i64::from(*len) - 1;
            out.push_str(&format!("[{lower}:{upper}]"));
        }
        out.push('=');
    }
    let mut index = 0;
    write_level(array, elem, 0, &mut index, &mut out);
    out
}

fn write_level(
    array: &ArrayDatum<'_>,
    elem: &Type,
    depth: usize,
    index: &mut usize,
    out: &mut String,
) {
    out.push('{');
    let len = array.dims[depth].1;
    for i in 0..len {
        if i > 0 {
            out.push(',');
        }
        if depth + 1 < array.dims.len() {
            write_level(array, elem, depth + 1, index, out);
        } else {
            match array.elems.get(*index) {
                Some(Datum::Null) | None => out.push_str("NULL"),
                Some(value) => write_element(&to_text(value.reborrow(), elem), out),
            }
            *index += 1;
        }
    }
    out.push('}');
}

fn write_element(text: &str, out: &mut String) {
    let needs_quotes = text.is_empty()
        || text.eq_ignore_ascii_case("NULL")
        || text
            .bytes()
            .any(|b| matches!(b, b'{' | b'}' | b',' | b'"' | b'\\') || is_space(b));
    if !needs_quotes {
        out.push_str(text);
        return;
    }
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// The position in `elems` of the element at `subscripts` (one per dimension), or `None`
/// (SQL NULL) when the count of subscripts differs from the array's dimensions or one is out
/// of bounds.
pub(crate) fn offset_of(array: &ArrayDatum<'_>, subscripts: &[i64]) -> Option<usize> {
    if subscripts.len() != array.dims.len() {
        return None;
    }
    let mut offset: usize = 0;
    for (&sub, &(lower, len)) in subscripts.iter().zip(&array.dims) {
        let position = sub.checked_sub(i64::from(lower))?;
        if position < 0 || position >= i64::from(len) {
            return None;
        }
        let len = usize::try_from(len).ok()?;
        offset = offset
            .checked_mul(len)?
            .checked_add(usize::try_from(position).ok()?)?;
    }
    (offset < array.elems.len()).then_some(offset)
}
