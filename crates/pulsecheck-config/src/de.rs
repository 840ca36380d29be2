//! Stage 1: the raw serde structs are deserialized from the [`Node`] tree by this
//! deserializer, which
//!
//! - attaches the line and column of the node (or key) to every error;
//! - keeps going after an error, so that one pass reports *every* unknown key, wrong type
//!   and bad value: an unknown key is reported and skipped, a bad field value is reported
//!   and the field becomes `None` (raw fields are all `Option`), a bad list element or map
//!   entry is reported and dropped;
//! - records which keys of which struct the document used, so a test can check that the
//!   example config covers the whole schema;
//! - fills [`Spanned<T>`], so validation can point at values too.
//!
//! Invariant that lets containers skip broken elements: every error that leaves
//! `MapDe::next_value` or `SeqDe::next_element` has already been reported.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use super::tree::{Key, Kind, Loc, Node};
use super::Located;

/// A value and where it was written.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Spanned<T> {
    pub value: T,
    pub loc: Loc,
}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

const SPANNED: &str = "$pulsecheck::Spanned";
const SPANNED_FIELDS: &[&str] = &["line", "column", "offset", "value"];
/// Struct names with this prefix also accept a scalar (see `SmtpField`).
pub(crate) const OR_SCALAR: &str = "$or_scalar:";

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Spanned<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SpannedVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for SpannedVisitor<T> {
            type Value = Spanned<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value with a location")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Spanned<T>, A::Error> {
                let mut loc = Loc::default();
                let mut value = None;
                while let Some(key) = map.next_key::<&str>()? {
                    match key {
                        "line" => loc.line = map.next_value()?,
                        "column" => loc.column = map.next_value()?,
                        "offset" => loc.offset = map.next_value()?,
                        _ => value = Some(map.next_value()?),
                    }
                }
                let value = value.ok_or_else(|| de::Error::missing_field("value"))?;
                Ok(Spanned { value, loc })
            }
        }
        d.deserialize_struct(SPANNED, SPANNED_FIELDS, SpannedVisitor(std::marker::PhantomData))
    }
}

/// A mapping whose keys are names chosen by the user (channels, headers), in file order.
/// An entry whose value does not deserialize is dropped (its error is already reported).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Entries<V>(pub Vec<(Spanned<String>, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Entries<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EntriesVisitor<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for EntriesVisitor<V> {
            type Value = Entries<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of names to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries<V>, A::Error> {
                let mut out = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    if let Ok(value) = map.next_value::<V>() {
                        out.push((key, value));
                    }
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(EntriesVisitor(std::marker::PhantomData))
    }
}

/// Keys a struct declares and the ones a document used.
pub(crate) type Coverage = BTreeMap<&'static str, (&'static [&'static str], BTreeSet<&'static str>)>;

/// Collected errors and key usage of one deserialization.
#[derive(Default)]
pub(crate) struct Ctx {
    errors: RefCell<Vec<Located>>,
    coverage: RefCell<Coverage>,
    invalid: RefCell<Invalid>,
}

/// Keys that were present but whose value was invalid (already reported), by the
/// location of the mapping they are in: validation must not also call them missing.
#[derive(Debug, Default)]
pub(crate) struct Invalid(HashSet<(Loc, String)>);

impl Invalid {
    pub(crate) fn contains(&self, map: Loc, key: &str) -> bool {
        self.0.contains(&(map, key.to_owned()))
    }
}

impl Ctx {
    fn report(&self, mut error: DeError) -> DeError {
        if !error.reported {
            self.errors.borrow_mut().push(Located {
                loc: error.loc.unwrap_or_default(),
                message: error.message.clone(),
                hint: error.hint.clone(),
            });
            error.reported = true;
        }
        error
    }

    fn record(&self, name: &'static str, fields: &'static [&'static str], entries: &[(Key, Node)]) {
        let mut coverage = self.coverage.borrow_mut();
        let (_, used) = coverage.entry(name).or_insert_with(|| (fields, BTreeSet::new()));
        for (key, _) in entries {
            if let Some(field) = fields.iter().find(|f| **f == key.name) {
                used.insert(*field);
            }
        }
    }

    pub(crate) fn into_parts(self) -> (Vec<Located>, Coverage, Invalid) {
        (
            self.errors.into_inner(),
            self.coverage.into_inner(),
            self.invalid.into_inner(),
        )
    }
}

/// Deserializes `T` from `node`, collecting every error into `ctx`. `None` when the value
/// as a whole could not be built (its errors are in `ctx`).
pub(crate) fn from_node<T: for<'de> Deserialize<'de>>(node: &Node, ctx: &Ctx) -> Option<T> {
    match T::deserialize(NodeDe { node, ctx }) {
        Ok(value) => Some(value),
        Err(error) => {
            ctx.report(error.or_at(node.loc));
            None
        }
    }
}

/// An error while deserializing, located once it passes a node.
#[derive(Debug)]
pub(crate) struct DeError {
    loc: Option<Loc>,
    message: String,
    hint: Option<String>,
    reported: bool,
    /// For an unknown key: the known key it is probably a typo of.
    meant: Option<&'static str>,
}

impl DeError {
    fn new(message: String, hint: Option<String>) -> DeError {
        DeError {
            loc: None,
            message,
            hint,
            reported: false,
            meant: None,
        }
    }

    fn or_at(mut self, loc: Loc) -> DeError {
        self.loc.get_or_insert(loc);
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

fn describe_unexpected(unexpected: de::Unexpected<'_>) -> String {
    use de::Unexpected as U;
    match unexpected {
        U::Bool(b) => format!("the boolean {b}"),
        U::Unsigned(n) => format!("the number {n}"),
        U::Signed(n) => format!("the number {n}"),
        U::Float(x) => format!("the number {x}"),
        U::Char(c) => format!("the character {c:?}"),
        U::Str(s) => format!("the string {:?}", super::tree::truncate(s, 40)),
        U::Unit | U::Option => "nothing (null)".into(),
        U::Seq => "a list".into(),
        U::Map => "a mapping".into(),
        other => other.to_string(),
    }
}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::new(msg.to_string(), None)
    }

    fn invalid_type(unexpected: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        DeError::new(
            format!("expected {expected}, found {}", describe_unexpected(unexpected)),
            None,
        )
    }

    fn invalid_value(unexpected: de::Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        DeError::new(
            format!("expected {expected}, found {}", describe_unexpected(unexpected)),
            None,
        )
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let mut error = DeError::new(
            format!("unknown key '{field}'"),
            Some(super::suggest::hint(field, expected, "valid keys here")),
        );
        error.meant = super::suggest::closest(field, expected.iter().copied());
        error
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DeError::new(
            format!("unknown value '{variant}'"),
            Some(super::suggest::hint(variant, expected, "use one of")),
        )
    }

    fn missing_field(field: &'static str) -> Self {
        DeError::new(format!("missing key '{field}'"), None)
    }

    fn duplicate_field(field: &'static str) -> Self {
        DeError::new(format!("key '{field}' is given twice"), None)
    }
}

/// The deserializer over one node. It owns nothing from the input's lifetime (strings are
/// copied), so it can deserialize into any `'de`.
#[derive(Clone, Copy)]
pub(crate) struct NodeDe<'a> {
    node: &'a Node,
    ctx: &'a Ctx,
}

impl NodeDe<'_> {
    fn expected(&self, what: &str) -> DeError {
        let hint = match (&self.node.kind, what) {
            (Kind::Int(_) | Kind::Float(_) | Kind::Bool(_), "a string") => {
                Some("put the value in quotes to make it a string".to_owned())
            }
            _ => None,
        };
        DeError::new(format!("expected {what}, found {}", self.node.describe()), hint).or_at(self.node.loc)
    }

    fn integer(&self) -> Result<i64, DeError> {
        match &self.node.kind {
            Kind::Int(i) => Ok(*i),
            Kind::Float(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => Ok(*x as i64),
            Kind::Str(s) if self.node.from_env => s.trim().parse().map_err(|_| self.expected("a whole number")),
            _ => Err(self.expected("a whole number")),
        }
    }

    fn ranged<T: TryFrom<i64>>(&self, low: i128, high: i128) -> Result<T, DeError> {
        let value = self.integer()?;
        T::try_from(value).map_err(|_| {
            DeError::new(
                format!("expected a whole number from {low} to {high}, found {value}"),
                None,
            )
            .or_at(self.node.loc)
        })
    }
}

macro_rules! int_method {
    ($method:ident, $visit:ident, $ty:ty) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let value: $ty = self.ranged(<$ty>::MIN as i128, <$ty>::MAX as i128)?;
            visitor.$visit(value).map_err(|e: DeError| e.or_at(self.node.loc))
        }
    };
}

impl<'de> Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.kind {
            Kind::Null => visitor.visit_unit(),
            Kind::Bool(b) => visitor.visit_bool(*b),
            Kind::Int(i) => visitor.visit_i64(*i),
            Kind::Float(x) => visitor.visit_f64(*x),
            Kind::Str(s) => visitor.visit_str(s),
            Kind::Seq(items) => visitor.visit_seq(SeqDe {
                items: items.iter(),
                ctx: self.ctx,
            }),
            Kind::Map(entries) => visitor.visit_map(MapDe::new(self.node.loc, entries, self.ctx)),
        };
        result.map_err(|e: DeError| e.or_at(self.node.loc))
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let value = match &self.node.kind {
            Kind::Bool(b) => *b,
            Kind::Str(s) if self.node.from_env && matches!(s.trim(), "true" | "false") => s.trim() == "true",
            _ => return Err(self.expected("true or false")),
        };
        visitor.visit_bool(value).map_err(|e: DeError| e.or_at(self.node.loc))
    }

    int_method!(deserialize_i8, visit_i8, i8);
    int_method!(deserialize_i16, visit_i16, i16);
    int_method!(deserialize_i32, visit_i32, i32);
    int_method!(deserialize_i64, visit_i64, i64);
    int_method!(deserialize_u8, visit_u8, u8);
    int_method!(deserialize_u16, visit_u16, u16);
    int_method!(deserialize_u32, visit_u32, u32);

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let value: u64 = self.ranged(0, i64::MAX as i128)?;
        visitor.visit_u64(value).map_err(|e: DeError| e.or_at(self.node.loc))
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let value = match &self.node.kind {
            Kind::Int(i) => *i as f64,
            Kind::Float(x) => *x,
            Kind::Str(s) if self.node.from_env => s.trim().parse().map_err(|_| self.expected("a number"))?,
            _ => return Err(self.expected("a number")),
        };
        visitor.visit_f64(value).map_err(|e: DeError| e.or_at(self.node.loc))
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            Kind::Str(s) => visitor.visit_str(s).map_err(|e: DeError| e.or_at(self.node.loc)),
            _ => Err(self.expected("a string")),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            Kind::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            Kind::Null => visitor.visit_unit(),
            _ => Err(self.expected("nothing (null)")),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            Kind::Seq(_) => self.deserialize_any(visitor),
            _ => Err(self.expected("a list")),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.kind {
            Kind::Map(_) => self.deserialize_any(visitor),
            _ => Err(self.expected("a mapping (key: value)")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        if name == SPANNED {
            return visitor.visit_map(SpannedAccess {
                loc: self.node.loc,
                value: SpanValue::Node(self),
                step: 0,
            });
        }
        let (name, or_scalar) = match name.strip_prefix(OR_SCALAR) {
            Some(name) => (name, true),
            None => (name, false),
        };
        match &self.node.kind {
            Kind::Map(entries) => {
                self.ctx.record(name, fields, entries);
                visitor
                    .visit_map(MapDe::new(self.node.loc, entries, self.ctx))
                    .map_err(|e: DeError| e.or_at(self.node.loc))
            }
            Kind::Str(_) | Kind::Int(_) | Kind::Float(_) | Kind::Bool(_) if or_scalar => self.deserialize_any(visitor),
            _ => Err(self.expected("a mapping (key: value)")),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match &self.node.kind {
            Kind::Str(s) => visitor
                .visit_enum(s.as_str().into_deserializer())
                .map_err(|e: DeError| e.or_at(self.node.loc)),
            _ => Err(self.expected(&format!("one of: {}", variants.join(", ")))),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

/// A map key: a string that can also be asked for its location (`Spanned<String>`).
struct KeyDe<'a> {
    key: &'a Key,
}

impl<'de> Deserializer<'de> for KeyDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_str(&self.key.name)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        if name == SPANNED {
            visitor.visit_map(SpannedAccess {
                loc: self.key.loc,
                value: SpanValue::Key(self.key),
                step: 0,
            })
        } else {
            Err(DeError::new(format!("unexpected key '{}'", self.key.name), None))
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

struct MapDe<'a> {
    /// Where the mapping is.
    loc: Loc,
    entries: &'a [(Key, Node)],
    pos: usize,
    value: Option<&'a Node>,
    ctx: &'a Ctx,
}

impl<'a> MapDe<'a> {
    fn new(loc: Loc, entries: &'a [(Key, Node)], ctx: &'a Ctx) -> Self {
        MapDe {
            loc,
            entries,
            pos: 0,
            value: None,
            ctx,
        }
    }

    fn take_value(&mut self) -> Result<&'a Node, DeError> {
        self.value
            .take()
            .ok_or_else(|| DeError::new("internal: a value was asked for before its key".into(), None))
    }
}

impl<'de> MapAccess<'de> for MapDe<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        let Some((key, value)) = self.entries.get(self.pos) else {
            return Ok(None);
        };
        self.pos += 1;
        self.value = Some(value);
        seed.deserialize(KeyDe { key })
            .map(Some)
            .map_err(|e| self.ctx.report(e.or_at(key.loc)))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let value = self.take_value()?;
        seed.deserialize(NodeDe {
            node: value,
            ctx: self.ctx,
        })
        .map_err(|e| self.ctx.report(e.or_at(value.loc)))
    }

    /// Reports a key that is not accepted (unknown key) and skips its entry.
    fn next_key<K: Deserialize<'de>>(&mut self) -> Result<Option<K>, DeError> {
        while let Some((key, value)) = self.entries.get(self.pos) {
            self.pos += 1;
            match K::deserialize(KeyDe { key }) {
                Ok(k) => {
                    self.value = Some(value);
                    return Ok(Some(k));
                }
                Err(error) => {
                    // A typo of a known key: that key is there, just misspelt, so
                    // validation must not also report it missing.
                    if let Some(meant) = error.meant {
                        self.ctx.invalid.borrow_mut().0.insert((self.loc, meant.to_owned()));
                    }
                    self.ctx.report(error.or_at(key.loc));
                }
            }
        }
        Ok(None)
    }

    /// Reports a value that does not deserialize; an optional field then becomes `None`
    /// so that the rest of the struct is still checked.
    fn next_value<V: Deserialize<'de>>(&mut self) -> Result<V, DeError> {
        let value = self.take_value()?;
        match V::deserialize(NodeDe {
            node: value,
            ctx: self.ctx,
        }) {
            Ok(v) => Ok(v),
            Err(error) => {
                let error = self.ctx.report(error.or_at(value.loc));
                if let Some((key, _)) = self.pos.checked_sub(1).and_then(|i| self.entries.get(i)) {
                    self.ctx.invalid.borrow_mut().0.insert((self.loc, key.name.clone()));
                }
                let null = Node::new(Kind::Null, value.loc);
                V::deserialize(NodeDe {
                    node: &null,
                    ctx: self.ctx,
                })
                .map_err(|_| error)
            }
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len().saturating_sub(self.pos))
    }
}

struct SeqDe<'a> {
    items: std::slice::Iter<'a, Node>,
    ctx: &'a Ctx,
}

impl<'de> SeqAccess<'de> for SeqDe<'_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DeError> {
        let Some(item) = self.items.next() else {
            return Ok(None);
        };
        seed.deserialize(NodeDe {
            node: item,
            ctx: self.ctx,
        })
        .map(Some)
        .map_err(|e| self.ctx.report(e.or_at(item.loc)))
    }

    /// Reports an element that does not deserialize and drops it.
    fn next_element<T: Deserialize<'de>>(&mut self) -> Result<Option<T>, DeError> {
        for item in self.items.by_ref() {
            match T::deserialize(NodeDe {
                node: item,
                ctx: self.ctx,
            }) {
                Ok(value) => return Ok(Some(value)),
                Err(error) => {
                    self.ctx.report(error.or_at(item.loc));
                }
            }
        }
        Ok(None)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

enum SpanValue<'a> {
    Node(NodeDe<'a>),
    Key(&'a Key),
}

/// Presents a node as `{line, column, offset, value}` to `Spanned<T>`.
struct SpannedAccess<'a> {
    loc: Loc,
    value: SpanValue<'a>,
    step: usize,
}

impl<'de> MapAccess<'de> for SpannedAccess<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        let Some(name) = SPANNED_FIELDS.get(self.step) else {
            return Ok(None);
        };
        self.step += 1;
        seed.deserialize(de::value::BorrowedStrDeserializer::new(name))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let number = match self.step {
            1 => self.loc.line,
            2 => self.loc.column,
            3 => self.loc.offset,
            _ => {
                return match &self.value {
                    SpanValue::Node(node) => seed.deserialize(*node),
                    SpanValue::Key(key) => seed.deserialize(KeyDe { key }),
                }
            }
        };
        seed.deserialize(de::value::U64Deserializer::new(number as u64))
    }
}

/// The field names serde derives for a struct (what `deny_unknown_fields` accepts).
pub(crate) fn struct_fields<T: for<'de> Deserialize<'de>>() -> (&'static str, &'static [&'static str]) {
    #[derive(Debug)]
    struct Captured(&'static str, &'static [&'static str]);
    impl fmt::Display for Captured {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("captured")
        }
    }
    impl std::error::Error for Captured {}
    impl de::Error for Captured {
        fn custom<T: fmt::Display>(_: T) -> Self {
            Captured("", &[])
        }
    }
    struct Probe;
    impl<'de> Deserializer<'de> for Probe {
        type Error = Captured;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Captured> {
            Err(Captured("", &[]))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            name: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Captured> {
            Err(Captured(name.strip_prefix(OR_SCALAR).unwrap_or(name), fields))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    match T::deserialize(Probe) {
        Err(Captured(name, fields)) => (name, fields),
        Ok(_) => ("", &[]),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tree::parse_yaml;
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        a: Option<Spanned<u32>>,
        b: Option<String>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        items: Option<Vec<Spanned<Inner>>>,
        names: Option<Entries<Spanned<Inner>>>,
        flag: Option<bool>,
    }

    fn run(text: &str) -> (Option<Outer>, Vec<Located>, Coverage) {
        let tree = parse_yaml(text).unwrap();
        let ctx = Ctx::default();
        let out = from_node::<Outer>(&tree, &ctx);
        let (errors, coverage, _) = ctx.into_parts();
        (out, errors, coverage)
    }

    #[test]
    fn every_error_is_reported_with_its_location() {
        let text =
            "items:\n  - a: 1\n    bb: 2\n  - a: x\n  - 7\nnames:\n  one: {a: 3}\n  two: [1]\nflg: true\nflag: 3\n";
        let (out, errors, _) = run(text);
        let got: Vec<String> = errors.iter().map(|e| format!("{} {}", e.loc, e.message)).collect();
        assert_eq!(
            got,
            [
                "3:5 unknown key 'bb'",
                "4:8 expected a whole number, found the string \"x\"",
                "5:5 expected a mapping (key: value), found the number 7",
                "8:8 expected a mapping (key: value), found a list",
                "9:1 unknown key 'flg'",
                "10:7 expected true or false, found the number 3",
            ]
        );
        assert_eq!(errors[0].hint.as_deref(), Some("did you mean 'b'?"));
        assert_eq!(errors[4].hint.as_deref(), Some("did you mean 'flag'?"));
        let out = out.unwrap();
        let items = out.items.unwrap();
        assert_eq!(items.len(), 2, "the broken element is dropped, the bad field is None");
        assert_eq!(items[0].loc.line, 2);
        assert_eq!(
            items[0].value.a.as_ref().unwrap().loc,
            Loc {
                line: 2,
                column: 8,
                offset: 14
            }
        );
        let names = out.names.unwrap().0;
        assert_eq!(names.len(), 1);
        assert_eq!((names[0].0.value.as_str(), names[0].0.loc.line), ("one", 7));
    }

    #[test]
    fn coverage_records_used_keys() {
        let (_, errors, coverage) = run("items: [{a: 1}]\n");
        assert!(errors.is_empty());
        let (fields, used) = &coverage["Inner"];
        assert_eq!(*fields, &["a", "b"]);
        assert_eq!(used.iter().copied().collect::<Vec<_>>(), ["a"]);
        assert_eq!(struct_fields::<Outer>(), ("Outer", &["items", "names", "flag"][..]));
    }
}
