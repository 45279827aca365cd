//! Struct-valued fields that accept only objects. serde's derived
//! `Deserialize` also reads a struct from a list of its field values in
//! order (`"timeouts": [1000, 2000]`), which the API documents as an object
//! and must refuse; these helpers, used with `deserialize_with`, take a map
//! and nothing else (and `null` for an `Option`).

use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map))
    }
}

/// A struct, from an object only.
pub fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    d.deserialize_map(ObjectVisitor(PhantomData))
}

/// An optional struct: `null` or an object.
pub fn optional_object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    struct V<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("null or an object")
        }
        fn visit_none<E>(self) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Option<T>, D::Error> {
            object(d).map(Some)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<T>, A::Error> {
            T::deserialize(MapAccessDeserializer::new(map)).map(Some)
        }
    }
    d.deserialize_option(V(PhantomData))
}

/// A list of structs, each from an object only.
pub fn objects<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    struct Item<T>(T);
    impl<'de, T: Deserialize<'de>> Deserialize<'de> for Item<T> {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            object(d).map(Item)
        }
    }
    struct V<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of objects")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
            while let Some(Item(t)) = seq.next_element::<Item<T>>()? {
                out.push(t);
            }
            Ok(out)
        }
    }
    d.deserialize_seq(V(PhantomData))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Inner {
        a: u32,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Outer {
        #[serde(default, deserialize_with = "super::optional_object")]
        opt: Option<Inner>,
        #[serde(default, deserialize_with = "super::objects")]
        list: Vec<Inner>,
        #[serde(deserialize_with = "super::object")]
        one: Inner,
    }

    #[test]
    fn objects_only() {
        let ok: Outer =
            serde_json::from_value(json!({"opt": {"a": 1}, "list": [{"a": 2}], "one": {"a": 3}}))
                .unwrap();
        assert_eq!(ok.opt, Some(Inner { a: 1 }));
        let none: Outer = serde_json::from_value(json!({"opt": null, "one": {"a": 3}})).unwrap();
        assert_eq!((none.opt, none.list.len()), (None, 0));
        for bad in [
            json!({"one": [3]}),
            json!({"opt": [1], "one": {"a": 3}}),
            json!({"list": [[2]], "one": {"a": 3}}),
        ] {
            assert!(
                serde_json::from_value::<Outer>(bad.clone()).is_err(),
                "{bad}"
            );
        }
        // YAML too (declarative import).
        assert!(serde_yaml_ng::from_str::<Outer>("one: [3]\n").is_err());
        assert!(serde_yaml_ng::from_str::<Outer>("one: {a: 3}\nopt: ~\n").is_ok());
    }
}
