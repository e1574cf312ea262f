//! [`Payload`]: a change's payload, as a JSON value, as compact JSON text, or both.

use std::any::Any;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A change's payload — the row's JSON object (for a delete: the state at deletion) — held as
/// a [`serde_json::Value`], as compact JSON text, or both: a text is parsed the first time its
/// value is read, and the parse is kept; a value is written out each time its text is asked
/// for (once per change, by the changelog).
///
/// A local write makes the text straight from its typed payload ([`Payload::serialized`]): the
/// changelog stores text, and building a `Value` only to write it out again was a twentieth of
/// a bulk write's time (B4/100, issue 14; ADR 0022). A change that arrives as JSON (an op, a
/// feed entry) is a `Value` already, and is validated and applied as one. Reads go through
/// `Deref<Target = Value>` (`change.payload.get("id")`); an edit through `DerefMut` drops the
/// text, which no longer holds; [`Payload::text`] gives the changelog's text.
///
/// It may also hold the payload's typed form, which the resource's validation decoded it into
/// ([`Checked`]): the apply takes that, not a second decode of the value (ADR 0023). An edit
/// drops it too.
#[derive(Clone, Default)]
pub struct Payload {
    /// The value, when the payload was made from one (or has been edited).
    value: Option<Value>,
    /// The value parsed from `text`, the first time it was read.
    parsed: OnceLock<Value>,
    /// The text, when the payload was made from it.
    text: Option<String>,
    /// The typed form the resource's validation made of it.
    checked: Option<Checked>,
}

/// A payload's typed form, as a resource's validation made it
/// (`SyncResource::validate_checked`); only that resource knows the type, and reads it back
/// with [`Payload::checked`]. Never from the wire: a payload deserialized has none.
pub type Checked = Arc<dyn Any + Send + Sync>;

/// `value` as compact JSON text, identical to `value.to_string()`, written straight into a
/// byte buffer (`Value`'s `Display` goes through the formatter piece by piece, which was the
/// largest single cost of an applied batch's changelog entries; issue 14).
fn json_text(value: &Value) -> String {
    let mut out = Vec::with_capacity(256);
    // Writing a `Value` into a `Vec` cannot fail: its map keys are strings.
    if serde_json::to_writer(&mut out, value).is_err() {
        return value.to_string();
    }
    // serde_json writes UTF-8 only.
    String::from_utf8(out).unwrap_or_else(|_| value.to_string())
}

/// `text` parsed. The text was written by serde_json (`Payload::serialized`), so it parses:
/// `Null` is never reached, and only keeps this free of a panic.
fn parse(text: Option<&str>) -> Value {
    text.and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or(Value::Null)
}

impl Payload {
    /// The payload `payload` serializes to (its fields in their declared order), as text only.
    pub fn serialized<T: Serialize + ?Sized>(payload: &T) -> Result<Self, serde_json::Error> {
        Ok(Self {
            text: Some(serde_json::to_string(payload)?),
            ..Self::default()
        })
    }

    /// The payload as the changelog stores it, compact JSON: the text it was made from, or its
    /// value written out (identical to `value.to_string()`).
    pub fn text(&self) -> String {
        match &self.text {
            Some(text) => text.clone(),
            None => json_text(self.value()),
        }
    }

    /// [`Payload::text`] appended to `out`, with no copy of its own (a batch row's entry, ADR
    /// 0026).
    pub fn write_text(&self, out: &mut String) {
        match &self.text {
            Some(text) => out.push_str(text),
            None => out.push_str(&json_text(self.value())),
        }
    }

    /// The payload as a JSON value (parsed from its text the first time).
    pub fn value(&self) -> &Value {
        match &self.value {
            Some(value) => value,
            None => self.parsed.get_or_init(|| parse(self.text.as_deref())),
        }
    }

    /// The value, taken out (parsed from the text when it was not yet).
    /// This payload with the typed form its validation made (none: as it is).
    pub fn with_checked(mut self, checked: Option<Checked>) -> Self {
        self.checked = checked;
        self
    }

    /// The typed form validation kept, when it is a `T`.
    pub fn checked<T: Any>(&self) -> Option<&T> {
        self.checked.as_deref()?.downcast_ref()
    }

    pub fn into_value(self) -> Value {
        let Payload {
            value,
            parsed,
            text,
            checked: _,
        } = self;
        value
            .or_else(|| parsed.into_inner())
            .unwrap_or_else(|| parse(text.as_deref()))
    }
}

impl From<Value> for Payload {
    fn from(value: Value) -> Self {
        Self {
            value: Some(value),
            ..Self::default()
        }
    }
}

impl Deref for Payload {
    type Target = Value;

    fn deref(&self) -> &Value {
        self.value()
    }
}

impl DerefMut for Payload {
    /// The value, to edit: the text and the typed form are dropped (they no longer hold).
    fn deref_mut(&mut self) -> &mut Value {
        self.checked = None;
        let (parsed, text) = (self.parsed.take(), self.text.take());
        self.value
            .get_or_insert_with(|| parsed.unwrap_or_else(|| parse(text.as_deref())))
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.value() == other.value()
    }
}

impl PartialEq<Value> for Payload {
    fn eq(&self, other: &Value) -> bool {
        self.value() == other
    }
}

impl PartialEq<Payload> for Value {
    fn eq(&self, other: &Payload) -> bool {
        self == other.value()
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.value(), f)
    }
}

impl fmt::Display for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.text {
            Some(text) => f.write_str(text),
            None => fmt::Display::fmt(self.value(), f),
        }
    }
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[derive(Serialize)]
    struct Row {
        id: &'static str,
        name: &'static str,
        deleted_at: Option<&'static str>,
    }

    #[test]
    fn text_made_from_a_typed_payload_keeps_its_field_order_and_reads_as_the_same_value() {
        let typed = Row {
            id: "a",
            name: "Zoë \"Z\"",
            deleted_at: None,
        };
        let payload = Payload::serialized(&typed).unwrap();
        assert_eq!(
            payload.text(),
            r#"{"id":"a","name":"Zoë \"Z\"","deleted_at":null}"#
        );
        let value = serde_json::json!({"deleted_at": null, "id": "a", "name": "Zoë \"Z\""});
        assert_eq!(payload, value);
        assert_eq!(
            payload.get("name").and_then(Value::as_str),
            Some("Zoë \"Z\"")
        );
        assert_eq!(
            payload.to_string(),
            payload.text(),
            "Display writes the text it holds"
        );
        assert_eq!(payload.clone().into_value(), value);
    }

    #[test]
    fn a_value_payload_writes_the_text_value_to_string_gives() {
        let value = serde_json::json!({"b": [1, 2.5, "x"], "a": {"z": null}});
        let payload = Payload::from(value.clone());
        assert_eq!(payload.text(), value.to_string());
        assert_eq!(payload.to_string(), value.to_string());
        assert_eq!(payload.into_value(), value);
        assert_eq!(Payload::default(), Value::Null);
    }

    #[test]
    fn an_edit_drops_the_text_it_was_made_from() {
        let mut payload = Payload::serialized(&Row {
            id: "a",
            name: "n",
            deleted_at: None,
        })
        .unwrap();
        payload["name"] = Value::from("m");
        assert_eq!(payload.text(), r#"{"deleted_at":null,"id":"a","name":"m"}"#);
        assert_eq!(payload.to_string(), payload.text());
        let mut read_first = Payload::serialized(&Row {
            id: "a",
            name: "n",
            deleted_at: None,
        })
        .unwrap();
        assert_eq!(read_first["name"], "n");
        read_first["id"] = Value::from("b");
        assert_eq!(
            read_first.into_value(),
            serde_json::json!({"deleted_at": null, "id": "b", "name": "n"})
        );
    }

    #[test]
    fn it_travels_as_its_json_value() {
        let payload = Payload::serialized(&Row {
            id: "a",
            name: "n",
            deleted_at: Some("t"),
        })
        .unwrap();
        let wire = serde_json::to_string(&payload).unwrap();
        assert_eq!(wire, r#"{"deleted_at":"t","id":"a","name":"n"}"#);
        let back: Payload = serde_json::from_str(&wire).unwrap();
        assert_eq!(back, payload);
    }

    #[test]
    fn the_typed_form_is_read_back_as_its_type_travels_with_clones_and_goes_with_an_edit() {
        let payload = Payload::from(serde_json::json!({"id": "a"}))
            .with_checked(Some(Arc::new(String::from("typed"))));
        assert_eq!(
            payload.checked::<String>().map(String::as_str),
            Some("typed")
        );
        assert_eq!(payload.checked::<u32>(), None, "another type is not it");
        let mut copy = payload.clone();
        assert_eq!(copy.checked::<String>().map(String::as_str), Some("typed"));
        copy["id"] = serde_json::json!("b");
        assert_eq!(copy.checked::<String>(), None, "an edit drops it");
        assert_eq!(
            payload.checked::<String>().map(String::as_str),
            Some("typed")
        );
        let wire: Payload =
            serde_json::from_str(&serde_json::to_string(&payload).unwrap()).unwrap();
        assert_eq!(wire.checked::<String>(), None, "never from the wire");
    }

    #[test]
    fn json_text_is_the_text_to_string_gives() {
        let values = [
            serde_json::json!({
                "id": "01939d2e-0000-7000-8000-00000000000a",
                "name": "Zoë \"quoted\" \\ back\nslash \u{0001} 🦀",
                "n": -12.5e-3, "big": 18446744073709551615u64, "i": -9223372036854775808i64,
                "nested": {"z": [1, null, true, {"a": ""}], "a": []},
                "deleted_at": null
            }),
            serde_json::json!("a string alone"),
            serde_json::json!(null),
            serde_json::json!([]),
        ];
        for value in values {
            assert_eq!(Payload::from(value.clone()).text(), value.to_string());
            assert_eq!(json_text(&value), value.to_string());
        }
    }
}
