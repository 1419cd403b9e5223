//! `Fields`: the SD parameter map, kept in wire order, plus small JSON helpers
//! (compact writer, ASCII-escaping writer, order-preserving object reader).

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

/// Ordered string→string map of structured-data parameters.
///
/// SD elements carry a handful of parameters, so a vector with linear lookup
/// is both faster and order-preserving. Inserting an existing key replaces
/// its value in place (last wins, first position kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    /// Empty map.
    pub const fn new() -> Self {
        Self(Vec::new())
    }

    /// Value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Value of `key` when present and non-empty (Python truthiness).
    pub fn get_nonempty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    /// Whether `key` is present (even with an empty value).
    pub fn contains_key(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// Insert or replace.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }

    /// Insert only when absent.
    pub fn set_default(&mut self, key: &str, value: &str) {
        if !self.contains_key(key) {
            self.0.push((key.to_owned(), value.to_owned()));
        }
    }

    /// Entries in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Compact JSON object text (UTF-8 kept as is).
    pub fn to_json(&self) -> String {
        self.write_json(false)
    }

    /// Compact JSON object text with every non-ASCII character `\u`-escaped
    /// (what the `credentials.fields` column stores).
    pub fn to_ascii_json(&self) -> String {
        self.write_json(true)
    }

    fn write_json(&self, ascii: bool) -> String {
        let mut out = String::with_capacity(
            2 + self
                .0
                .iter()
                .map(|(k, v)| k.len() + v.len() + 6)
                .sum::<usize>(),
        );
        out.push('{');
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_json_str(&mut out, k, ascii);
            out.push(':');
            write_json_str(&mut out, v, ascii);
        }
        out.push('}');
        out
    }

    /// Parse a JSON object keeping key order. Non-string values are stored as
    /// their compact JSON text (`1`, `true`, `null`, `{"a":1}`).
    pub fn from_json_object(text: &str) -> Result<Self, serde_json::Error> {
        let pairs: OrderedObject = serde_json::from_str(text)?;
        Ok(Self::from_ordered(pairs))
    }

    pub(crate) fn from_ordered(obj: OrderedObject) -> Self {
        let mut f = Fields::new();
        for (k, v) in obj.0 {
            let s = match v {
                OrderedValue::String(s) => s,
                other => other.to_json(),
            };
            f.insert(k, s);
        }
        f
    }
}

impl FromIterator<(String, String)> for Fields {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        let mut f = Fields::new();
        for (k, v) in iter {
            f.insert(k, v);
        }
        f
    }
}

impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut m = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// A JSON value read with object key order preserved at every depth
/// (serde_json's own `Map` sorts keys unless `preserve_order` is enabled).
#[derive(Debug, Clone, PartialEq)]
pub enum OrderedValue {
    /// `null`.
    Null,
    /// Boolean.
    Bool(bool),
    /// Number.
    Number(serde_json::Number),
    /// String.
    String(String),
    /// Array.
    Array(Vec<OrderedValue>),
    /// Object in wire order.
    Object(OrderedObject),
}

impl OrderedValue {
    /// Compact JSON text.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            OrderedValue::Null => out.push_str("null"),
            OrderedValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            OrderedValue::Number(n) => out.push_str(&n.to_string()),
            OrderedValue::String(s) => write_json_str(out, s, false),
            OrderedValue::Array(a) => {
                out.push('[');
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write(out);
                }
                out.push(']');
            }
            OrderedValue::Object(o) => {
                out.push('{');
                for (i, (k, v)) in o.0.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_json_str(out, k, false);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

impl<'de> Deserialize<'de> for OrderedValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OrderedValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<OrderedValue, E> {
                Ok(OrderedValue::Null)
            }
            fn visit_none<E>(self) -> Result<OrderedValue, E> {
                Ok(OrderedValue::Null)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<OrderedValue, D2::Error> {
                OrderedValue::deserialize(d)
            }
            fn visit_bool<E>(self, b: bool) -> Result<OrderedValue, E> {
                Ok(OrderedValue::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<OrderedValue, E> {
                Ok(OrderedValue::Number(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<OrderedValue, E> {
                Ok(OrderedValue::Number(n.into()))
            }
            fn visit_f64<E>(self, n: f64) -> Result<OrderedValue, E> {
                Ok(
                    serde_json::Number::from_f64(n)
                        .map_or(OrderedValue::Null, OrderedValue::Number),
                )
            }
            fn visit_str<E>(self, s: &str) -> Result<OrderedValue, E> {
                Ok(OrderedValue::String(s.to_owned()))
            }
            fn visit_string<E>(self, s: String) -> Result<OrderedValue, E> {
                Ok(OrderedValue::String(s))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OrderedValue, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element::<OrderedValue>()? {
                    out.push(v);
                }
                Ok(OrderedValue::Array(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<OrderedValue, A::Error> {
                ObjVisitor.visit_map(map).map(OrderedValue::Object)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A JSON object read with its key order preserved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderedObject(pub Vec<(String, OrderedValue)>);

impl OrderedObject {
    /// Parse JSON text that must be an object.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// First value stored under exactly `key`.
    pub fn get(&self, key: &str) -> Option<&OrderedValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

struct ObjVisitor;

impl<'de> Visitor<'de> for ObjVisitor {
    type Value = OrderedObject;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedObject, A::Error> {
        let mut out: Vec<(String, OrderedValue)> = Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some((k, v)) = map.next_entry::<String, OrderedValue>()? {
            // Duplicate keys: last value wins, first position kept (Python dict).
            match out.iter_mut().find(|(ek, _)| *ek == k) {
                Some(slot) => slot.1 = v,
                None => out.push((k, v)),
            }
        }
        Ok(OrderedObject(out))
    }
}

impl<'de> Deserialize<'de> for OrderedObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ObjVisitor)
    }
}

/// Append `s` as a JSON string literal. With `ascii`, every non-ASCII char is
/// written as `\uXXXX` (surrogate pairs above the BMP), like Python's
/// `json.dumps(ensure_ascii=True)`.
pub fn write_json_str(out: &mut String, s: &str, ascii: bool) {
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let esc: Option<&str> = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            '\u{08}' => Some("\\b"),
            '\u{0c}' => Some("\\f"),
            _ => None,
        };
        let needs_hex = esc.is_none() && ((c as u32) < 0x20 || (ascii && (c as u32) > 0x7e));
        if esc.is_none() && !needs_hex {
            continue;
        }
        out.push_str(&s[start..i]);
        start = i + c.len_utf8();
        if let Some(e) = esc {
            out.push_str(e);
        } else if c as u32 == 0x7f {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{:04x}", unit));
            }
        }
    }
    out.push_str(&s[start..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_keeps_first_position_last_value() {
        let mut f = Fields::new();
        f.insert("a", "1");
        f.insert("b", "2");
        f.insert("a", "3");
        assert_eq!(f.iter().collect::<Vec<_>>(), vec![("a", "3"), ("b", "2")]);
        f.set_default("b", "9");
        assert_eq!(f.get("b"), Some("2"));
    }

    #[test]
    fn json_round_trip_keeps_order_and_escapes() {
        let mut f = Fields::new();
        f.insert("z", "q\"uo\\te\n");
        f.insert("a", "é☃\u{1F600}");
        assert_eq!(
            f.to_json(),
            "{\"z\":\"q\\\"uo\\\\te\\n\",\"a\":\"é☃\u{1F600}\"}"
        );
        assert_eq!(
            f.to_ascii_json(),
            "{\"z\":\"q\\\"uo\\\\te\\n\",\"a\":\"\\u00e9\\u2603\\ud83d\\ude00\"}"
        );
        let back = Fields::from_json_object(&f.to_ascii_json()).unwrap();
        assert_eq!(back, f);
        let compact: serde_json::Value = serde_json::from_str(&f.to_json()).unwrap();
        assert_eq!(compact["a"], "é☃\u{1F600}");
    }

    #[test]
    fn ordered_object_stringifies_non_strings() {
        let f =
            Fields::from_json_object(r#"{"b":1,"a":true,"h":{"X":"y","B":[1.5,"z"]},"n":null}"#)
                .unwrap();
        assert_eq!(
            f.iter().collect::<Vec<_>>(),
            vec![
                ("b", "1"),
                ("a", "true"),
                ("h", "{\"X\":\"y\",\"B\":[1.5,\"z\"]}"),
                ("n", "null")
            ]
        );
        assert!(Fields::from_json_object("[1]").is_err());
    }
}
