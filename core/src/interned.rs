//! Names that reports hold as `&'static str` (a format's id, a unit, a band's name), read
//! back from a report: the same text as a `&'static str`, each distinct text kept once for
//! the life of the process. The set of such names is small and closed (the registry's, a
//! decoder library's container names, the units and bands the analysis writes), so what is
//! kept stays bounded.

use std::collections::BTreeSet;
use std::sync::Mutex;

/// A report's `&'static str` field read back through [`name`]. (Spelt as an alias so that
/// serde's derive does not take the field as borrowed from the input.)
pub type Name = &'static str;

static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());

/// At most this many distinct names are kept; past it a name is refused (a report carrying
/// thousands of made-up names is not one Sluice wrote).
const MAX_NAMES: usize = 4096;

/// `text` as a `&'static str`: the one kept for it, or a new one kept from now on.
pub fn intern(text: &str) -> Option<&'static str> {
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = names.get(text) {
        return Some(s);
    }
    if names.len() >= MAX_NAMES {
        return None;
    }
    let s: &'static str = Box::leak(text.to_owned().into_boxed_str());
    names.insert(s);
    Some(s)
}

/// `#[serde(deserialize_with = "crate::interned::name")]` for a `&'static str` field.
pub fn name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
    intern(&text).ok_or_else(|| serde::de::Error::custom("too many distinct names in reports"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_name_is_kept_once() {
        let a = super::intern("isomp4-test").unwrap();
        let b = super::intern(&String::from("isomp4-test")).unwrap();
        assert!(std::ptr::eq(a, b));
        assert_eq!(a, "isomp4-test");
    }
}
