//! The changes-feed cursor: opaque to clients, versioned for us.
//!
//! Wire form: base64url (no padding) of `v2:<seq>:<hlc>:<incarnation>`, where `<seq>` is the last
//! changelog sequence number the reader has seen for the resource, `<hlc>` the clock of the entry
//! at `<seq>` (0: not checked — position 0, or an entry already pruned) and `<incarnation>` the
//! serving database's incarnation (ADR 0012). The anchor lets the server tell a cursor its feed
//! continues from a cursor into a feed it no longer has (a restored, older copy of itself).
//! `v1:<seq>` (no anchor) is still read. An absent cursor means "from the beginning".

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// A position in one resource's changelog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor(pub i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CursorError(pub &'static str);

/// The longest cursor accepted (a v2 cursor is at most 100 characters).
const MAX_LEN: usize = 128;

/// What a v2 cursor says about the entry it points at, to be checked by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// The clock of the entry at the cursor's position (0: unchecked).
    pub hlc: i64,
    /// The incarnation of the database that issued the cursor ('' for an unbound database).
    pub incarnation: String,
}

/// A feed cursor as it travels: a position, and (v2) the anchor that proves the feed still
/// continues it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedCursor {
    pub seq: i64,
    pub anchor: Option<Anchor>,
}

/// The text behind a feed cursor (bounded, base64url, UTF-8).
fn feed_text(text: &str) -> Result<String, CursorError> {
    if text.is_empty() || text.len() > MAX_LEN {
        return Err(CursorError("the cursor is empty or too long"));
    }
    let raw = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| CursorError("the cursor is not base64url"))?;
    String::from_utf8(raw).map_err(|_| CursorError("the cursor is not text"))
}

fn canonical_number(text: &str) -> Result<i64, CursorError> {
    if text.is_empty()
        || !text.bytes().all(|b| b.is_ascii_digit())
        || (text.len() > 1 && text.starts_with('0'))
    {
        return Err(CursorError(
            "the cursor position is not a canonical non-negative number",
        ));
    }
    text.parse::<i64>()
        .map_err(|_| CursorError("the cursor position is out of range"))
}

fn is_incarnation(text: &str) -> bool {
    text.len() <= 32 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl FeedCursor {
    /// A v2 cursor at `seq`, anchored by the entry's clock and the issuing incarnation.
    pub fn anchored(seq: i64, hlc: i64, incarnation: &str) -> FeedCursor {
        FeedCursor {
            seq,
            anchor: Some(Anchor {
                hlc,
                incarnation: incarnation.to_string(),
            }),
        }
    }

    pub fn position(&self) -> Cursor {
        Cursor(self.seq)
    }

    pub fn encode(&self) -> String {
        match &self.anchor {
            None => Cursor(self.seq).encode(),
            Some(a) => {
                URL_SAFE_NO_PAD.encode(format!("v2:{}:{}:{}", self.seq, a.hlc, a.incarnation))
            }
        }
    }

    /// A v1 or v2 cursor; anything else is refused.
    pub fn decode(text: &str) -> Result<FeedCursor, CursorError> {
        let raw = feed_text(text)?;
        if raw.starts_with("v1:") {
            return Cursor::decode(text).map(|c| FeedCursor {
                seq: c.0,
                anchor: None,
            });
        }
        let rest = raw
            .strip_prefix("v2:")
            .ok_or(CursorError("unknown cursor version"))?;
        let mut parts = rest.splitn(3, ':');
        let (seq, hlc, incarnation) = match (parts.next(), parts.next(), parts.next()) {
            (Some(s), Some(h), Some(i)) => (s, h, i),
            _ => return Err(CursorError("the cursor has too few parts")),
        };
        if !is_incarnation(incarnation) {
            return Err(CursorError(
                "the cursor's incarnation is not an incarnation id",
            ));
        }
        Ok(FeedCursor::anchored(
            canonical_number(seq)?,
            canonical_number(hlc)?,
            incarnation,
        ))
    }
}

impl Cursor {
    pub const START: Cursor = Cursor(0);

    pub fn encode(self) -> String {
        URL_SAFE_NO_PAD.encode(format!("v1:{}", self.0))
    }

    pub fn decode(text: &str) -> Result<Cursor, CursorError> {
        let raw = feed_text(text)?;
        let seq = raw
            .strip_prefix("v1:")
            .ok_or(CursorError("unknown cursor version"))?;
        canonical_number(seq).map(Cursor)
    }
}

/// A position in a resource's snapshot (`GET /sync/{resource}/snapshot`): the changelog
/// watermark the snapshot started at (the feed position to continue from after its last page)
/// the incarnation of the database serving it, and the last entity id served. Wire form:
/// base64url (no padding) of `s2:<watermark>:<incarnation>:<id>`; `s1:<watermark>:<id>` (no
/// incarnation) is still read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotCursor {
    pub watermark: i64,
    /// `None` for an s1 cursor.
    pub incarnation: Option<String>,
    pub after: String,
}

/// The longest snapshot cursor accepted (an id is at most 64 bytes).
const MAX_SNAPSHOT_LEN: usize = 160;

impl SnapshotCursor {
    pub fn encode(&self) -> String {
        match &self.incarnation {
            Some(i) => URL_SAFE_NO_PAD.encode(format!("s2:{}:{i}:{}", self.watermark, self.after)),
            None => URL_SAFE_NO_PAD.encode(format!("s1:{}:{}", self.watermark, self.after)),
        }
    }

    pub fn decode(text: &str) -> Result<SnapshotCursor, CursorError> {
        if text.is_empty() || text.len() > MAX_SNAPSHOT_LEN {
            return Err(CursorError("the snapshot cursor is empty or too long"));
        }
        let raw = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| CursorError("the snapshot cursor is not base64url"))?;
        let raw =
            String::from_utf8(raw).map_err(|_| CursorError("the snapshot cursor is not text"))?;
        let (watermark, incarnation, after) = if let Some(rest) = raw.strip_prefix("s1:") {
            let (watermark, after) = rest
                .split_once(':')
                .ok_or(CursorError("the snapshot cursor has no position"))?;
            (watermark, None, after)
        } else if let Some(rest) = raw.strip_prefix("s2:") {
            let mut parts = rest.splitn(3, ':');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(w), Some(i), Some(after)) if is_incarnation(i) => {
                    (w, Some(i.to_string()), after)
                }
                _ => return Err(CursorError("the snapshot cursor has no incarnation")),
            }
        } else {
            return Err(CursorError("unknown snapshot cursor version"));
        };
        let watermark = Some(watermark)
            .filter(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|w| w.parse::<i64>().ok())
            .ok_or(CursorError(
                "the snapshot cursor's watermark is not a number",
            ))?;
        if after.is_empty() || after.len() > 64 {
            return Err(CursorError("the snapshot cursor's position is not an id"));
        }
        Ok(SnapshotCursor {
            watermark,
            incarnation,
            after: after.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_cursors_round_trip_and_refuse_garbage() {
        let c = SnapshotCursor {
            watermark: 42,
            incarnation: Some("0123456789abcdef".into()),
            after: "01939d2e-0000-7000-8000-00000000000a".into(),
        };
        assert_eq!(SnapshotCursor::decode(&c.encode()), Ok(c.clone()));
        let legacy = SnapshotCursor {
            incarnation: None,
            ..c
        };
        assert_eq!(SnapshotCursor::decode(&legacy.encode()), Ok(legacy));
        for bad in [
            "",
            "!!!",
            &Cursor(3).encode(),
            &URL_SAFE_NO_PAD.encode("s1:x:id"),
            &URL_SAFE_NO_PAD.encode("s1:-1:id"),
            &URL_SAFE_NO_PAD.encode("s1:5:"),
            &URL_SAFE_NO_PAD.encode("s1:5"),
            &URL_SAFE_NO_PAD.encode("s2:5:id"),
            &URL_SAFE_NO_PAD.encode("s2:5:XYZ:id"),
        ] {
            assert!(SnapshotCursor::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn feed_cursors_round_trip_in_both_versions() {
        for c in [
            FeedCursor::anchored(0, 0, ""),
            FeedCursor::anchored(42, 7 << 16, "0123456789abcdef"),
            FeedCursor::anchored(i64::MAX, i64::MAX, &"f".repeat(32)),
            FeedCursor {
                seq: 9,
                anchor: None,
            },
        ] {
            let text = c.encode();
            assert!(text.len() <= MAX_LEN, "{text}");
            assert_eq!(FeedCursor::decode(&text), Ok(c));
        }
        let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
        for bad in [
            b64("v2:1:2"),
            b64("v2:1:2:XYZ"),
            b64("v2:01:2:ab"),
            b64("v2:1:-2:ab"),
            b64(&format!("v2:1:2:{}", "a".repeat(33))),
            b64("v3:1:2:ab"),
        ] {
            assert!(FeedCursor::decode(&bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn cursors_round_trip() {
        for seq in [0, 1, 42, i64::MAX] {
            let c = Cursor(seq);
            assert_eq!(Cursor::decode(&c.encode()), Ok(c));
        }
        assert_eq!(Cursor(7).encode(), "djE6Nw");
    }

    proptest::proptest! {
        /// Fuzz-style: any text either decodes to the cursor that re-encodes to it, or is
        /// refused — never a panic, never two spellings of one position.
        #[test]
        fn any_text_decodes_canonically_or_is_refused(text in "\\PC{0,80}") {
            if let Ok(cursor) = Cursor::decode(&text) {
                proptest::prop_assert_eq!(cursor.encode(), text.clone());
            }
            if let Ok(cursor) = FeedCursor::decode(&text) {
                proptest::prop_assert_eq!(cursor.encode(), text);
            }
        }

        #[test]
        fn any_bytes_behind_base64_are_handled(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            let text = URL_SAFE_NO_PAD.encode(&bytes);
            if let Ok(cursor) = Cursor::decode(&text) {
                proptest::prop_assert_eq!(cursor.encode(), text.clone());
                proptest::prop_assert!(cursor.0 >= 0);
            }
            if let Ok(cursor) = FeedCursor::decode(&text) {
                proptest::prop_assert_eq!(cursor.encode(), text);
            }
        }
    }

    #[test]
    fn malformed_cursors_are_refused() {
        let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
        for bad in [
            String::new(),
            "!!!".into(),
            "djE6Nw==".into(),
            b64("v3:7"),
            b64("v1:"),
            b64("v1:-1"),
            b64("v1:+1"),
            b64("v1:007"),
            b64("v1:1e3"),
            b64("v1:99999999999999999999"),
            b64("v1: 7"),
            "x".repeat(100),
            URL_SAFE_NO_PAD.encode([0xff, 0xfe]),
        ] {
            assert!(Cursor::decode(&bad).is_err(), "{bad:?} must be refused");
        }
    }
}
