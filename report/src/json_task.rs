//! A task as compact JSON, written by hand: byte for byte what serde_json writes for a
//! `TaskReport` (`tests/json_task.rs` holds it to that on every fixture), keys as literals
//! and strings checked eight bytes at a time.

use std::cell::RefCell;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::{
    AwaitFrame, BlockedOn, FieldValue, Fields, FrameHead, FutureRef, Hex, Map, TaskReport, Via,
};

/// Appends `task` to `out` as serde_json's compact output of it.
pub fn write_task(out: &mut Vec<u8>, task: &TaskReport) {
    out.extend_from_slice(b"{\"id\":");
    match task.id {
        Some(id) => int(out, id),
        None => null(out),
    }
    out.extend_from_slice(b",\"address\":");
    hex(out, task.address);
    out.extend_from_slice(b",\"state\":");
    opt_str(out, task.state.as_deref());
    out.extend_from_slice(b",\"flags\":");
    list(out, &task.flags, |out, f| string(out, f));
    out.extend_from_slice(b",\"future\":");
    match &task.future {
        Some(f) => future_ref(out, f),
        None => null(out),
    }
    out.extend_from_slice(b",\"backtrace\":");
    list(out, &task.backtrace, frame);
    out.extend_from_slice(b",\"blocked_on\":");
    blocked_on(out, task.blocked_on.as_ref());
    if !task.holds.is_empty() {
        // A few per task that holds a lock: serde's writer is fast enough for these.
        out.extend_from_slice(b",\"holds\":");
        if serde_json::to_writer(&mut *out, &task.holds).is_err() {
            null(out);
        }
    }
    out.extend_from_slice(b",\"fields\":");
    fields(out, &task.fields);
    out.extend_from_slice(b",\"unavailable\":");
    map(out, &task.unavailable, |out, v| string(out, v));
    out.push(b'}');
}

fn future_ref(out: &mut Vec<u8>, f: &FutureRef) {
    out.extend_from_slice(b"{\"type\":");
    string(out, &f.ty);
    out.extend_from_slice(b",\"address\":");
    hex(out, f.address);
    out.push(b'}');
}

/// One await frame; its branches, each a chain of frames, only when it has some (as
/// `skip_serializing_if` leaves them out). The depth is the backtrace's, which reading
/// bounds.
fn frame(out: &mut Vec<u8>, f: &AwaitFrame) {
    frame_head(out, f);
    out.extend_from_slice(b",\"address\":");
    hex(out, f.address);
    out.extend_from_slice(b",\"locals\":");
    fields(out, &f.locals);
    out.extend_from_slice(b",\"note\":");
    opt_str(out, f.note.as_deref());
    if !f.branches.is_empty() {
        out.extend_from_slice(b",\"branches\":");
        list(out, &f.branches, |out, b| {
            out.extend_from_slice(b"{\"backtrace\":");
            list(out, &b.backtrace, frame);
            out.extend_from_slice(b",\"blocked_on\":");
            blocked_on(out, b.blocked_on.as_ref());
            out.push(b'}');
        });
    }
    out.push(b'}');
}

/// A frame's function, future, state and location: the same few for a million tasks.
fn write_head(out: &mut Vec<u8>, f: &AwaitFrame) {
    out.extend_from_slice(b"{\"function\":");
    string(out, &f.function);
    out.extend_from_slice(b",\"future\":");
    string(out, &f.future);
    out.extend_from_slice(b",\"state\":");
    opt_str(out, f.state.as_deref());
    out.extend_from_slice(b",\"location\":");
    match &f.location {
        Some(l) => {
            out.extend_from_slice(b"{\"file\":");
            opt_str(out, l.file.as_deref());
            out.extend_from_slice(b",\"line\":");
            int(out, l.line);
            out.push(b'}');
        }
        None => null(out),
    }
    out.extend_from_slice(b",\"via\":");
    opt_str(out, f.via.map(Via::as_str));
}

/// A head as written, with the head it was written from: held, it cannot be freed and
/// its address given to another head while it is cached.
struct Head {
    _head: Arc<FrameHead>,
    json: Box<[u8]>,
}

/// Heads a thread keeps: past this many, the rest are written each time.
const MAX_HEADS: usize = 4096;

thread_local! {
    /// The heads written on this thread (a stream's worker writes its tasks' frames), by
    /// the address of the shared head (every frame of one future type and state has the
    /// same): writing them was a fifth of rendering a task.
    static HEADS: RefCell<FxHashMap<usize, Head>> = RefCell::new(FxHashMap::default());
}

fn frame_head(out: &mut Vec<u8>, f: &AwaitFrame) {
    let key = Arc::as_ptr(&f.head) as usize;
    HEADS.with(|heads| {
        if let Some(head) = heads.borrow().get(&key) {
            out.extend_from_slice(&head.json);
            return;
        }
        let mut json = Vec::with_capacity(128);
        write_head(&mut json, f);
        out.extend_from_slice(&json);
        let mut heads = heads.borrow_mut();
        if heads.len() < MAX_HEADS {
            heads.insert(
                key,
                Head {
                    _head: f.head.clone(),
                    json: json.into(),
                },
            );
        }
    });
}

fn blocked_on(out: &mut Vec<u8>, b: Option<&BlockedOn>) {
    let Some(b) = b else {
        return null(out);
    };
    out.extend_from_slice(b"{\"kind\":");
    string(out, &b.kind);
    out.extend_from_slice(b",\"future\":");
    string(out, &b.future);
    out.extend_from_slice(b",\"address\":");
    hex(out, b.address);
    out.extend_from_slice(b",\"fields\":");
    fields(out, &b.fields);
    out.push(b'}');
}

fn fields(out: &mut Vec<u8>, f: &Fields) {
    map(out, f, value);
}

/// A value as `#[serde(untagged)]` writes it: the variant's content alone. Lists nest
/// only as deep as reading made them (`field_value_depth`).
fn value(out: &mut Vec<u8>, v: &FieldValue) {
    match v {
        // Formatting an i128 costs twice an i64's, and report numbers fit in 64 bits.
        FieldValue::Int(i) => match i64::try_from(*i) {
            Ok(small) => int(out, small),
            Err(_) => int(out, *i),
        },
        FieldValue::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        FieldValue::Address(a) => hex(out, *a),
        FieldValue::Str(s) => string(out, s),
        FieldValue::List(items) => list(out, items, value),
        FieldValue::Collection { len, first } => {
            out.extend_from_slice(b"{\"len\":");
            int(out, *len);
            out.extend_from_slice(b",\"first\":");
            list(out, first, value);
            out.push(b'}');
        }
        FieldValue::Object { ty, address } => {
            out.extend_from_slice(b"{\"type\":");
            string(out, ty);
            out.extend_from_slice(b",\"address\":");
            hex(out, *address);
            out.push(b'}');
        }
    }
}

fn map<V>(out: &mut Vec<u8>, m: &Map<V>, mut each: impl FnMut(&mut Vec<u8>, &V)) {
    out.push(b'{');
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, k);
        out.push(b':');
        each(out, v);
    }
    out.push(b'}');
}

fn list<T>(out: &mut Vec<u8>, items: &[T], mut each: impl FnMut(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        each(out, item);
    }
    out.push(b']');
}

fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"null");
}

fn int(out: &mut Vec<u8>, i: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
}

/// An address as `Hex` serializes it: a string of `0x` and hex digits.
fn hex(out: &mut Vec<u8>, a: Hex) {
    out.push(b'"');
    out.extend_from_slice(a.ascii_digits(&mut [0u8; 18]));
    out.push(b'"');
}

fn opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => string(out, s),
        None => null(out),
    }
}

/// A JSON string, escaped as serde_json escapes: `"` and `\` with a backslash, the
/// control characters below 0x20 as `\b \t \n \f \r` or `\u00XX`; everything else,
/// non-ASCII included, as it is.
fn string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    if needs_escape(bytes) {
        escape(out, bytes);
    } else {
        out.extend_from_slice(bytes);
    }
    out.push(b'"');
}

/// Whether any byte is below 0x20, `"` or `\\`: eight bytes at a time, by the bit trick
/// that finds a zero byte (a byte of `x - 0x01…01` borrows only where `x` had a zero
/// or a byte that borrowed before it, so the test never misses and, as only an `any`,
/// never lies). The last bytes are the last eight again (overlapping), and a string
/// shorter than eight is padded with spaces, which need no escape: no byte by byte
/// loop (most strings written are names of thirty-odd bytes, or keys of a few).
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * n as u64) & !x & HIGHS;
    let special = |x: u64| {
        below(x, 0x20) | below(x ^ (ONES * b'"' as u64), 1) | below(x ^ (ONES * b'\\' as u64), 1)
            != 0
    };
    let word = |c: &[u8]| {
        let mut w = [b' '; 8];
        w[..c.len()].copy_from_slice(c);
        u64::from_le_bytes(w)
    };
    if bytes.len() <= 8 {
        return special(word(bytes));
    }
    let mut chunks = bytes.chunks_exact(8);
    if chunks.any(|c| special(word(c))) {
        return true;
    }
    special(word(&bytes[bytes.len() - 8..]))
}

fn escape(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..0x20 => {
                out.extend_from_slice(b"\\u00");
                out.push(DIGITS[(b >> 4) as usize]);
                out.push(DIGITS[(b & 0xf) as usize]);
            }
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{Branch, SourceRef};

    /// Written twice: the second time its frames' heads come from this thread's cache.
    fn same_as_serde(t: &TaskReport) {
        let theirs = serde_json::to_string(t).unwrap();
        for _ in 0..2 {
            let mut ours = Vec::new();
            write_task(&mut ours, t);
            assert_eq!(String::from_utf8(ours).unwrap(), theirs);
        }
    }

    #[test]
    fn strings_that_need_escaping_are_escaped_as_serde_json_escapes_them() {
        let mut every_byte = String::new();
        for b in 0u8..0x80 {
            every_byte.push(b as char);
        }
        let cases = [
            "",
            "plain",
            "exactly8",
            "sixteen bytes!!!",
            "a \"quoted\" name",
            "back\\slash",
            "tab\tand\nnewline\r",
            "\u{1}\u{1f}\u{7f}",
            "ünïcödé and 日本語 then \"",
            "long enough to take a few eight-byte chunks, then a quote at the end\"",
            &every_byte,
        ];
        for s in cases {
            let mut ours = Vec::new();
            string(&mut ours, s);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(s).unwrap(),
                "{s:?}"
            );
        }
    }

    /// Every byte that needs escaping, and its neighbours that do not, at every place
    /// of strings of every length around the eight-byte words (the padded short word,
    /// the overlapping last word): the check agrees with a byte by byte one.
    #[test]
    fn the_escape_check_finds_every_byte_that_needs_it_wherever_it_is() {
        let by_byte = |b: &[u8]| b.iter().any(|&c| c < 0x20 || c == b'"' || c == b'\\');
        for len in 0..=25 {
            for at in 0..len {
                for special in [
                    0u8, 0x1f, 0x20, b'"', b'\\', b'!', b'[', b']', 0x7f, 0x80, 0xff,
                ] {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = special;
                    assert_eq!(needs_escape(&bytes), by_byte(&bytes), "{bytes:?}");
                }
            }
            assert!(!needs_escape(&vec![b'z'; len]));
        }
    }

    #[test]
    fn every_part_of_a_task_is_written_as_serde_json_writes_it() {
        let mut locals = Fields::new();
        locals.insert("n", FieldValue::Int(i128::MIN));
        locals.insert("big", FieldValue::Int(i128::MAX));
        locals.insert("at", FieldValue::Address(Hex(0)));
        locals.insert("name", FieldValue::Str("a\"b".into()));
        locals.insert(
            "list",
            FieldValue::List(vec![FieldValue::Int(-1), FieldValue::List(vec![])]),
        );
        locals.insert(
            "queue",
            FieldValue::Collection {
                len: u64::MAX,
                first: vec![FieldValue::Object {
                    ty: "app::Job".into(),
                    address: Hex(u64::MAX),
                }],
            },
        );
        let leaf = BlockedOn {
            kind: "sleep".into(),
            future: "tokio::time::sleep::Sleep".into(),
            address: Hex(0x10),
            fields: locals.clone(),
        };
        let frame = |branches: Vec<Branch>| AwaitFrame {
            head: Arc::new(FrameHead {
                function: "app::serve".into(),
                future: "app::serve::{async_fn_env#0}".into(),
                state: Some("Suspend0".into()),
                location: Some(SourceRef {
                    file: Some(Arc::from("src/main.rs")),
                    line: 12,
                }),
                via: Some(super::Via::AsyncFn),
                own: false,
            }),
            address: Hex(0x20),
            locals: locals.clone(),
            note: Some("a note\n".into()),
            branches,
        };
        let mut bare = frame(vec![]);
        bare.head = Arc::new(FrameHead {
            state: None,
            location: Some(SourceRef {
                file: None,
                line: 0,
            }),
            via: None,
            ..(*bare.head).clone()
        });
        bare.note = None;
        bare.locals = Fields::new();
        let mut unavailable = Map::new();
        unavailable.insert("id", "memory at 0x1 is not in the dump".to_string());
        let task = TaskReport {
            id: Some(u64::MAX),
            address: Hex(0x5600_0000_1234),
            state: Some("idle".into()),
            flags: vec!["NOTIFIED".into(), "JOIN_INTEREST".into()],
            future: Some(FutureRef {
                ty: "app::main::{async_block#0}".into(),
                address: Hex(0x30),
            }),
            backtrace: vec![
                frame(vec![
                    Branch {
                        backtrace: vec![bare.clone()],
                        blocked_on: Some(leaf.clone()),
                    },
                    Branch {
                        backtrace: vec![],
                        blocked_on: None,
                    },
                ]),
                bare,
            ],
            blocked_on: Some(leaf),
            holds: vec![super::super::Held {
                kind: "lock".into(),
                resource: Hex(0x40),
                local: "guard".into(),
                function: "app::serve".into(),
                location: None,
            }],
            fields: locals,
            unavailable,
        };
        same_as_serde(&task);
        same_as_serde(&TaskReport::new(None, Hex(1)));
    }
}
