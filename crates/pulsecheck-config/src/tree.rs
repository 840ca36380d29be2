//! Stage 0: the file as a format-neutral tree of nodes, each with its line and column.
//!
//! YAML (serde-saphyr, through its `Spanned` wrapper on every node) and TOML (the `toml`
//! crate's spanned document tree) are both turned into [`Node`]s, so that everything after
//! this point (env substitution, the raw structs, validation) is written once and knows
//! where every key and value came from.

use std::fmt;

use super::Located;
pub(crate) use pulsecheck_core::text::truncate;

/// A position in the source: 1-based line and column (in characters), and the byte offset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Loc {
    pub line: usize,
    pub column: usize,
    pub offset: usize,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Maps byte offsets to lines and columns.
pub(crate) struct LineIndex<'a> {
    text: &'a str,
    /// Byte offset of the start of each line.
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    pub(crate) fn loc(&self, offset: usize) -> Loc {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&start| start <= offset).max(1);
        let start = self.starts[line - 1];
        // Count characters, not bytes; an offset inside a character rounds down.
        let column = self
            .text
            .get(start..)
            .unwrap_or_default()
            .char_indices()
            .take_while(|(i, _)| start + i < offset)
            .count()
            + 1;
        Loc { line, column, offset }
    }
}

/// A map key and where it is.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Key {
    pub name: String,
    pub loc: Loc,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Key, Node)>),
}

/// One value of the document.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Node {
    pub kind: Kind,
    pub loc: Loc,
    /// The string came (partly) from `${ENV}` substitution, so a number or boolean is
    /// accepted in its text form (`port: ${SMTP_PORT}`).
    pub from_env: bool,
}

impl Node {
    pub(crate) fn new(kind: Kind, loc: Loc) -> Node {
        Node {
            kind,
            loc,
            from_env: false,
        }
    }

    /// What the value is, in words, for "expected X, found Y".
    pub(crate) fn describe(&self) -> String {
        match &self.kind {
            Kind::Null => "nothing (null)".into(),
            Kind::Bool(b) => format!("the boolean {b}"),
            Kind::Int(i) => format!("the number {i}"),
            Kind::Float(x) => format!("the number {x}"),
            Kind::Str(s) => format!("the string {:?}", truncate(s, 40)),
            Kind::Seq(_) => "a list".into(),
            Kind::Map(_) => "a mapping".into(),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            Kind::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// Nesting deeper than this is refused (no config needs it, and it bounds recursion).
pub(crate) const MAX_DEPTH: usize = 48;

/// Which syntax a file is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Toml,
}

// ---------------------------------------------------------------------------------------
// YAML

mod yaml {
    use std::fmt;

    use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
    use serde_saphyr::Spanned;

    /// A YAML node with its location. Every node is wrapped in `Spanned`, which
    /// serde-saphyr fills from the parser's event positions.
    pub(super) struct YNode(pub Spanned<YKind>);

    pub(super) enum YKind {
        Null,
        Bool(bool),
        Int(i64),
        Float(f64),
        Str(String),
        Seq(Vec<YNode>),
        Map(Vec<(Spanned<YKey>, YNode)>),
    }

    /// A key: a scalar, kept as text. Collections as keys are refused.
    pub(super) struct YKey(pub String);

    impl<'de> Deserialize<'de> for YNode {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            Spanned::<YKind>::deserialize(d).map(YNode)
        }
    }

    impl<'de> Deserialize<'de> for YKind {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(KindVisitor)
        }
    }

    struct KindVisitor;

    impl<'de> Visitor<'de> for KindVisitor {
        type Value = YKind;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a YAML value")
        }
        fn visit_unit<E>(self) -> Result<YKind, E> {
            Ok(YKind::Null)
        }
        fn visit_none<E>(self) -> Result<YKind, E> {
            Ok(YKind::Null)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<YKind, D::Error> {
            d.deserialize_any(KindVisitor)
        }
        fn visit_bool<E>(self, v: bool) -> Result<YKind, E> {
            Ok(YKind::Bool(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<YKind, E> {
            Ok(YKind::Int(v))
        }
        fn visit_u64<E>(self, v: u64) -> Result<YKind, E> {
            Ok(i64::try_from(v).map_or(YKind::Float(v as f64), YKind::Int))
        }
        fn visit_i128<E>(self, v: i128) -> Result<YKind, E> {
            Ok(i64::try_from(v).map_or(YKind::Float(v as f64), YKind::Int))
        }
        fn visit_u128<E>(self, v: u128) -> Result<YKind, E> {
            Ok(i64::try_from(v).map_or(YKind::Float(v as f64), YKind::Int))
        }
        fn visit_f64<E>(self, v: f64) -> Result<YKind, E> {
            Ok(YKind::Float(v))
        }
        fn visit_str<E>(self, v: &str) -> Result<YKind, E> {
            Ok(YKind::Str(v.to_owned()))
        }
        fn visit_string<E>(self, v: String) -> Result<YKind, E> {
            Ok(YKind::Str(v))
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<YKind, E> {
            Ok(YKind::Str(String::from_utf8_lossy(v).into_owned()))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<YKind, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element()? {
                items.push(item);
            }
            Ok(YKind::Seq(items))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<YKind, A::Error> {
            let mut entries = Vec::new();
            while let Some(key) = map.next_key::<Spanned<YKey>>()? {
                let value = map.next_value()?;
                entries.push((key, value));
            }
            Ok(YKind::Map(entries))
        }
    }

    impl<'de> Deserialize<'de> for YKey {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct KeyVisitor;
            impl Visitor<'_> for KeyVisitor {
                type Value = YKey;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    f.write_str("a key (a word, not a list or mapping)")
                }
                fn visit_str<E>(self, v: &str) -> Result<YKey, E> {
                    Ok(YKey(v.to_owned()))
                }
                fn visit_bool<E>(self, v: bool) -> Result<YKey, E> {
                    Ok(YKey(v.to_string()))
                }
                fn visit_i64<E>(self, v: i64) -> Result<YKey, E> {
                    Ok(YKey(v.to_string()))
                }
                fn visit_u64<E>(self, v: u64) -> Result<YKey, E> {
                    Ok(YKey(v.to_string()))
                }
                fn visit_f64<E>(self, v: f64) -> Result<YKey, E> {
                    Ok(YKey(v.to_string()))
                }
                fn visit_unit<E>(self) -> Result<YKey, E> {
                    Ok(YKey(String::new()))
                }
                fn visit_none<E>(self) -> Result<YKey, E> {
                    Ok(YKey(String::new()))
                }
            }
            d.deserialize_any(KeyVisitor)
        }
    }
}

pub(crate) fn parse_yaml(text: &str) -> Result<Node, Located> {
    let index = LineIndex::new(text);
    if text.trim().is_empty() {
        return Ok(Node::new(
            Kind::Map(Vec::new()),
            Loc {
                line: 1,
                column: 1,
                offset: 0,
            },
        ));
    }
    match serde_saphyr::from_str::<yaml::YNode>(text) {
        Ok(root) => Ok(convert_yaml(root, &index)),
        Err(error) => {
            let loc = error
                .location()
                .filter(|l| l.line() > 0)
                .map(|l| Loc {
                    line: l.line() as usize,
                    column: l.column().max(1) as usize,
                    offset: l.span().byte_offset().unwrap_or_default() as usize,
                })
                .unwrap_or(Loc {
                    line: 1,
                    column: 1,
                    offset: 0,
                });
            let message = serde_saphyr::MessageFormatter::format_message(
                &serde_saphyr::DefaultMessageFormatter,
                error.without_snippet(),
            );
            let message = message.escape_debug().to_string();
            Err(Located::new(loc, format!("invalid YAML: {message}")))
        }
    }
}

fn yaml_loc(location: &serde_saphyr::Location, index: &LineIndex<'_>) -> Loc {
    match location.span().byte_offset() {
        // Recompute from the byte offset so YAML and TOML count columns the same way.
        Some(offset) => index.loc(offset as usize),
        None => Loc {
            line: location.line() as usize,
            column: location.column() as usize,
            offset: 0,
        },
    }
}

fn convert_yaml(node: yaml::YNode, index: &LineIndex<'_>) -> Node {
    let loc = yaml_loc(&node.0.referenced, index);
    let kind = match node.0.value {
        yaml::YKind::Null => Kind::Null,
        yaml::YKind::Bool(b) => Kind::Bool(b),
        yaml::YKind::Int(i) => Kind::Int(i),
        yaml::YKind::Float(x) => Kind::Float(x),
        yaml::YKind::Str(s) => Kind::Str(s),
        yaml::YKind::Seq(items) => Kind::Seq(items.into_iter().map(|n| convert_yaml(n, index)).collect()),
        yaml::YKind::Map(entries) => Kind::Map(
            entries
                .into_iter()
                .map(|(key, value)| {
                    let key = Key {
                        loc: yaml_loc(&key.referenced, index),
                        name: key.value.0,
                    };
                    (key, convert_yaml(value, index))
                })
                .collect(),
        ),
    };
    Node::new(kind, loc)
}

// ---------------------------------------------------------------------------------------
// TOML

pub(crate) fn parse_toml(text: &str) -> Result<Node, Located> {
    let index = LineIndex::new(text);
    match toml::de::DeTable::parse(text) {
        Ok(table) => {
            let span = table.span();
            let table = table.into_inner();
            convert_toml_table(table, span.start, &index, 0)
        }
        Err(error) => {
            let offset = error.span().map(|s| s.start).unwrap_or_default();
            let message = error.message().trim_end().escape_debug().to_string();
            Err(Located::new(index.loc(offset), format!("invalid TOML: {message}")))
        }
    }
}

fn convert_toml_table(
    table: toml::de::DeTable<'_>,
    start: usize,
    index: &LineIndex<'_>,
    depth: usize,
) -> Result<Node, Located> {
    if depth > MAX_DEPTH {
        return Err(Located::new(index.loc(start), "nested too deeply".to_owned()));
    }
    let mut entries = Vec::with_capacity(table.len());
    for (key, value) in table {
        let key_loc = index.loc(key.span().start);
        let key = Key {
            name: key.into_inner().into_owned(),
            loc: key_loc,
        };
        entries.push((key, convert_toml(value, index, depth + 1)?));
    }
    Ok(Node::new(Kind::Map(entries), index.loc(start)))
}

fn convert_toml(
    value: toml::Spanned<toml::de::DeValue<'_>>,
    index: &LineIndex<'_>,
    depth: usize,
) -> Result<Node, Located> {
    use toml::de::DeValue;
    let start = value.span().start;
    let loc = index.loc(start);
    if depth > MAX_DEPTH {
        return Err(Located::new(loc, "nested too deeply".to_owned()));
    }
    let kind = match value.into_inner() {
        DeValue::String(s) => Kind::Str(s.into_owned()),
        DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(v) => Kind::Int(v),
            Err(_) => return Err(Located::new(loc, format!("the number {i} is out of range"))),
        },
        DeValue::Float(x) => match x.as_str().replace('_', "").parse::<f64>() {
            Ok(v) => Kind::Float(v),
            Err(_) => return Err(Located::new(loc, format!("'{x}' is not a number"))),
        },
        DeValue::Boolean(b) => Kind::Bool(b),
        DeValue::Datetime(dt) => Kind::Str(dt.to_string()),
        DeValue::Array(items) => {
            let mut out = Vec::new();
            for item in items {
                out.push(convert_toml(item, index, depth + 1)?);
            }
            Kind::Seq(out)
        }
        DeValue::Table(table) => return convert_toml_table(table, start, index, depth + 1),
    };
    Ok(Node::new(kind, loc))
}

// ---------------------------------------------------------------------------------------
// ${ENV} substitution

/// A problem with `${…}` and the node (string value) it is in.
pub(crate) struct EnvError {
    pub error: Located,
    pub node: Option<Loc>,
}

/// Replaces `${NAME}` and `${NAME:-default}` in every string value (not in keys).
/// `$${` is a literal `${`. Substitution happens on the parsed tree rather than on the
/// text, so a value can never change the structure of the file (a secret containing
/// `: ` or a newline stays one string) and every location stays exact.
pub(crate) fn substitute_env(
    node: &mut Node,
    text: &str,
    index: &LineIndex<'_>,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<EnvError>,
) {
    match &mut node.kind {
        Kind::Str(value) if value.contains('$') => {
            let mut problems = Vec::new();
            let replaced = expand(value, env, &mut problems);
            if replaced != *value {
                node.from_env = true;
                *value = replaced;
            }
            for (needle, message, hint) in problems {
                let loc = locate_in_source(text, index, node.loc, &needle);
                errors.push(EnvError {
                    error: Located {
                        loc,
                        message,
                        hint: Some(hint),
                    },
                    node: Some(node.loc),
                });
            }
        }
        Kind::Seq(items) => {
            for item in items {
                substitute_env(item, text, index, env, errors);
            }
        }
        Kind::Map(entries) => {
            for (_, value) in entries {
                substitute_env(value, text, index, env, errors);
            }
        }
        _ => {}
    }
}

/// Finds `needle` in the source at or after the node, for a precise column; falls back
/// to the node itself (e.g. when escapes in a quoted string hide it).
fn locate_in_source(text: &str, index: &LineIndex<'_>, loc: Loc, needle: &str) -> Loc {
    text.get(loc.offset..)
        .and_then(|rest| rest.find(needle))
        .map(|found| index.loc(loc.offset + found))
        .filter(|found| found.line >= loc.line)
        .unwrap_or(loc)
}

/// Expands one string. Problems are (text to point at, message, hint).
fn expand(value: &str, env: &dyn Fn(&str) -> Option<String>, problems: &mut Vec<(String, String, String)>) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
            continue;
        }
        let Some(body_start) = after.strip_prefix("${") else {
            out.push('$');
            rest = &after[1..];
            continue;
        };
        let Some(end) = body_start.find('}') else {
            problems.push((
                "${".to_owned(),
                "unterminated '${' in a string".to_owned(),
                "write ${NAME} or ${NAME:-default}; for a literal '${' write '$${'".to_owned(),
            ));
            out.push_str(after);
            rest = "";
            break;
        };
        let body = &body_start[..end];
        let (name, default) = match body.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (body, None),
        };
        let valid_name = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid_name {
            problems.push((
                format!("${{{body}}}"),
                format!("'${{{body}}}' is not a valid variable reference"),
                "variable names are letters, digits and '_'; write ${NAME} or ${NAME:-default}".to_owned(),
            ));
        } else {
            match (env(name).filter(|v| !(default.is_some() && v.is_empty())), default) {
                (Some(found), _) => out.push_str(&found),
                (None, Some(default)) => out.push_str(default),
                (None, None) => problems.push((
                    format!("${{{name}"),
                    format!("environment variable '{name}' is not set"),
                    format!("set {name}, or give a default: ${{{name}:-VALUE}}"),
                )),
            }
        }
        rest = &body_start[end + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("example.com".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_variables_and_defaults() {
        let mut problems = Vec::new();
        assert_eq!(expand("http://${HOST}/x", &env, &mut problems), "http://example.com/x");
        assert_eq!(expand("${NOPE:-a:b}", &env, &mut problems), "a:b");
        assert_eq!(expand("${EMPTY:-d}", &env, &mut problems), "d");
        assert_eq!(expand("$${HOST} $5 $", &env, &mut problems), "${HOST} $5 $");
        assert!(problems.is_empty());
        expand("${NOPE}", &env, &mut problems);
        expand("${1X}", &env, &mut problems);
        expand("${HOST", &env, &mut problems);
        let messages: Vec<&str> = problems.iter().map(|p| p.1.as_str()).collect();
        assert_eq!(
            messages,
            [
                "environment variable 'NOPE' is not set",
                "'${1X}' is not a valid variable reference",
                "unterminated '${' in a string"
            ]
        );
    }

    #[test]
    fn line_index_counts_characters() {
        let index = LineIndex::new("ab\néé x\n");
        assert_eq!(
            index.loc(0),
            Loc {
                line: 1,
                column: 1,
                offset: 0
            }
        );
        assert_eq!(index.loc(3).line, 2);
        // "éé " is 5 bytes; 'x' is the 4th character.
        assert_eq!(index.loc(3 + 5).column, 4);
        assert_eq!(index.loc(1000).line, 3);
    }

    #[test]
    fn yaml_and_toml_give_the_same_tree_shape_and_locations() {
        let yaml = parse_yaml("a: 1\nb:\n  - x\n  - {c: true}\n").unwrap();
        let toml = parse_toml("a = 1\nb = [\"x\", {c = true}]\n").unwrap();
        for tree in [&yaml, &toml] {
            assert_eq!(tree.get("a").unwrap().kind, Kind::Int(1));
            let Kind::Seq(items) = &tree.get("b").unwrap().kind else {
                panic!("not a list")
            };
            assert_eq!(items[1].get("c").unwrap().kind, Kind::Bool(true));
        }
        assert_eq!(yaml.get("b").unwrap().loc.line, 3);
        let Kind::Map(entries) = &yaml.kind else { panic!() };
        assert_eq!(
            entries[1].0.loc,
            Loc {
                line: 2,
                column: 1,
                offset: 5
            }
        );
        let Kind::Map(entries) = &toml.kind else { panic!() };
        assert_eq!(
            entries[1].0.loc,
            Loc {
                line: 2,
                column: 1,
                offset: 6
            }
        );
    }

    #[test]
    fn syntax_errors_have_locations() {
        let e = parse_yaml("a: [1\n").unwrap_err();
        assert_eq!((e.loc.line, e.loc.column), (1, 4));
        let e = parse_toml("a = 1\nb = [1\n").unwrap_err();
        assert_eq!(e.loc.line, 2);
        assert!(e.message.starts_with("invalid TOML"), "{}", e.message);
    }

    #[test]
    fn toml_datetimes_become_strings() {
        let tree = parse_toml("t = 2025-06-01T22:00:00Z\n").unwrap();
        assert_eq!(tree.get("t").unwrap().kind, Kind::Str("2025-06-01T22:00:00Z".into()));
    }
}
