//! JSON decoding (one object, an array of objects, or NDJSON) and canonical NDJSON encoding.
//!
//! The decoder is a hand-rolled scanner ([`scan`]) over borrowed bytes: each object's known
//! fields are located as slices of the input, converted and validated, then pushed straight into
//! the reused [`EventBatch`] columns. Nothing is allocated per event except on error paths.
//!
//! Framing: the input is read as a sequence of top-level values separated by whitespace, so one
//! object, NDJSON (blank lines skipped) and concatenated objects all work. A top-level array
//! holds events as its elements. A malformed object dead-letters its line and decoding resumes
//! on the next line; a malformed array dead-letters everything from its `[` to the end of the
//! input (there is no safe place to resume inside it), undoing any element already decoded.

mod encode;
mod fast;
mod fields;
pub(crate) mod scan;

pub(crate) use encode::write_str;
pub use encode::{encode_event, encode_row};
pub(crate) use scan::unescape_into;

use super::validate::{self as v, Row};
use super::{DeadLetter, EventBatch, Kind, Reason};
use fields::Fields;
use scan::{Lexer, SyntaxError, Val};

/// Decode `input` into `out`, appending one row per valid event; invalid events become dead letters
/// carrying their own bytes. `default_kind` applies to objects without a `kind` field.
pub fn decode(
    input: &[u8],
    default_kind: Option<Kind>,
    out: &mut EventBatch,
    dead: &mut Vec<DeadLetter>,
) {
    let mut lx = Lexer::new(input, 0);
    if input.starts_with(b"\xEF\xBB\xBF") {
        lx.i = 3;
    }
    let mut fields = Fields::default();
    loop {
        lx.ws();
        let start = lx.i;
        let res = match lx.peek() {
            None => return,
            Some(b'{') => object_event(&mut lx, default_kind, &mut fields, out, dead),
            Some(b'[') => {
                let (rows, letters) = (out.len(), dead.len());
                if let Err(e) = array(&mut lx, default_kind, &mut fields, out, dead) {
                    v::truncate_rows(out, rows);
                    dead.truncate(letters);
                    dead.push(malformed(input, start, input.len(), e));
                    return;
                }
                Ok(())
            }
            Some(_) => lx
                .value()
                .map(|val| dead.push(not_an_object(val, "top-level value"))),
        };
        if let Err(e) = res {
            // Resume on the line after the one the bad value started on.
            let end = input[start..]
                .iter()
                .position(|&c| c == b'\n')
                .map_or(input.len(), |n| start + n);
            // An error past the line's end means the line stopped in the middle of a value.
            let e = if e.at > end {
                SyntaxError {
                    at: end,
                    what: "line ends inside a value",
                }
            } else {
                e
            };
            dead.push(malformed(input, start, end, e));
            lx.i = end;
        }
    }
}

fn array<'a>(
    lx: &mut Lexer<'a>,
    default_kind: Option<Kind>,
    fields: &mut Fields<'a>,
    out: &mut EventBatch,
    dead: &mut Vec<DeadLetter>,
) -> Result<(), SyntaxError> {
    lx.i += 1;
    lx.ws();
    if lx.peek() == Some(b']') {
        lx.i += 1;
        return Ok(());
    }
    loop {
        lx.ws();
        if lx.peek() == Some(b'{') {
            object_event(lx, default_kind, fields, out, dead)?;
        } else {
            let val = lx.value()?;
            dead.push(not_an_object(val, "array element"));
        }
        lx.ws();
        match lx.peek() {
            Some(b',') => lx.i += 1,
            Some(b']') => {
                lx.i += 1;
                return Ok(());
            }
            _ => return Err(lx.err("expected ',' or ']' in array")),
        }
    }
}

#[cold]
fn malformed(input: &[u8], start: usize, end: usize, e: SyntaxError) -> DeadLetter {
    let raw = input[start..end].trim_ascii_end();
    DeadLetter::new(
        Reason::Malformed,
        format!("malformed JSON at byte {}: {}", e.at, e.what),
        raw,
    )
}

#[cold]
fn not_an_object(val: Val<'_>, what: &str) -> DeadLetter {
    let detail = format!(
        "{what}: expected a JSON object, got {}",
        v::got_raw(val.raw)
    );
    DeadLetter::new(Reason::Malformed, detail, val.raw)
}

/// Parse one object at the cursor and push it as an event or a dead letter.
#[inline]
fn object_event<'a>(
    lx: &mut Lexer<'a>,
    default_kind: Option<Kind>,
    f: &mut Fields<'a>,
    out: &mut EventBatch,
    dead: &mut Vec<DeadLetter>,
) -> Result<(), SyntaxError> {
    let start = lx.i;
    if fast::object(lx, default_kind, out) {
        return Ok(());
    }
    *f = Fields::default();
    f.parse(lx)?;
    let mut ship_buf = [0u8; 64];
    let mut row = Row::new(Kind::Sensor);
    let res = f
        .row(default_kind, &mut ship_buf, &mut row)
        .and_then(|()| row.push(out));
    if let Err(e) = res {
        dead.push(e.into_dead(&lx.b[start..lx.i]));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
