//! [`Payload`]: a change's payload, as a JSON value, as compact JSON text, or both.

use std::fmt;
use std::ops::Deref;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::json_text;

/// A change's payload — the row's JSON object (for a delete: the state at deletion) — held as
/// a [`serde_json::Value`], as compact JSON text, or both; each form is made from the other
/// the first time it is asked for, then kept.
///
/// A local write makes the text straight from its typed payload ([`Payload::serialized`]): the
/// changelog stores text, and building a `Value` only to write it out again was a twentieth of
/// a bulk write's time (B4/100, issue 14). A change that arrives as JSON (an op, a feed entry)
/// is a `Value` already, and is validated and applied as one. Reads go through `Deref<Target =
/// Value>` (`change.payload.get("id")`); [`Payload::text`] gives the changelog's text.
#[derive(Clone, Default)]
pub struct Payload {
    value: OnceLock<Value>,
    text: OnceLock<String>,
}

impl Payload {
    /// The payload `payload` serializes to (its fields in their declared order), as text only.
    pub fn serialized<T: Serialize + ?Sized>(payload: &T) -> Result<Self, serde_json::Error> {
        let text = serde_json::to_string(payload)?;
        Ok(Self {
            value: OnceLock::new(),
            text: OnceLock::from(text),
        })
    }

    /// The payload as compact JSON text: the text it was made from, or its value written out
    /// (identical to `value.to_string()`).
    pub fn text(&self) -> String {
        match self.text.get() {
            Some(text) => text.clone(),
            None => json_text(self.value()),
        }
    }

    /// The payload as a JSON value (parsed from its text the first time).
    pub fn value(&self) -> &Value {
        self.value.get_or_init(|| match self.text.get() {
            // The text was written by serde_json (`serialized`): it parses. `Null` is never
            // reached, and kept only to stay free of a panic.
            Some(text) => serde_json::from_str(text).unwrap_or(Value::Null),
            None => Value::Null,
        })
    }

    /// The value, taken out (parsed from the text when there is no value yet).
    pub fn into_value(self) -> Value {
        let Payload { value, text } = self;
        match value.into_inner() {
            Some(value) => value,
            None => text
                .into_inner()
                .and_then(|text| serde_json::from_str(&text).ok())
                .unwrap_or(Value::Null),
        }
    }
}

impl From<Value> for Payload {
    fn from(value: Value) -> Self {
        Self {
            value: OnceLock::from(value),
            text: OnceLock::new(),
        }
    }
}

impl Deref for Payload {
    type Target = Value;

    fn deref(&self) -> &Value {
        self.value()
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
        match self.text.get() {
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
}
