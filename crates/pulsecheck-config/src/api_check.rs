//! A check created through the REST API: a JSON object with the same keys as a check in
//! the config file, validated by the same code (so the same rules and the same messages)
//! in the context of the loaded file: its `defaults`, its channel names, its check names
//! and its `server.allow` list. Errors name the field (`conditions[0].status`) instead of
//! a line and column.
//!
//! The JSON value becomes a [`Node`] tree whose every key and value gets a synthetic
//! location (line 0, a unique column), so the validator's locations map back to paths.
//! No `${ENV}` substitution happens: a request must never read the daemon's environment.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use pulsecheck_core::address_policy::AddressPolicy;
use pulsecheck_core::storage::Origin;
use pulsecheck_core::target::{Host, TargetSpec};

use super::de::{self, Spanned};
use super::raw::RawCheck;
use super::tree::{Key, Kind, Loc, Node};
use super::validate::{self, Names};
use super::{CheckConfig, MonitorConfig};

/// The file's `defaults:` section (after `${ENV}` substitution), kept so that checks
/// created through the API inherit them as file checks do.
#[derive(Clone, Debug, Default)]
pub struct CheckDefaults(pub(crate) Option<Arc<Node>>);

/// One problem with an API check definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Where: `target`, `conditions[1].json_path`, `headers.X-Api`; `None` when the
    /// problem comes from the file's `defaults` or the object as a whole.
    pub field: Option<String>,
    pub message: String,
    pub hint: Option<String>,
    /// The problem is an unknown key (a typo), not a bad value.
    pub unknown_key: bool,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{field}: {}", self.message)?,
            None => f.write_str(&self.message)?,
        }
        if let Some(hint) = &self.hint {
            write!(f, " (hint: {hint})")?;
        }
        Ok(())
    }
}

/// Validates `definition` as one more check of `file` (whose own checks are
/// `file.checks` with origin `File`; API checks already there are ignored, so an update
/// validates against the file only). The check may reach only what `server.allow` lists,
/// and its probes enforce that on every hop.
pub fn validate_api_check(
    file: &MonitorConfig,
    definition: &serde_json::Value,
) -> Result<CheckConfig, Vec<FieldError>> {
    let mut paths = Paths::default();
    let node = paths.node(definition, String::new(), 0);
    if !matches!(node.kind, Kind::Map(_)) {
        return Err(vec![FieldError {
            field: None,
            message: format!("a check must be a JSON object, found {}", node.describe()),
            hint: Some("send e.g. {\"name\": \"api\", \"target\": \"https://api.example.com/health\"}".into()),
            unknown_key: false,
        }]);
    }
    let ctx = de::Ctx::default();
    let raw = de::from_node::<RawCheck>(&node, &ctx);
    let (mut located, _, invalid) = ctx.into_parts();
    let spanned = Spanned {
        value: raw.unwrap_or_default(),
        loc: node.loc,
    };
    let defaults = file.check_defaults.0.as_deref().and_then(|tree| {
        // Valid when the file loaded; its errors were reported then.
        de::from_node::<RawCheck>(tree, &de::Ctx::default())
    });
    let names = Names {
        channels: file.channels.iter().map(|c| c.name.clone()).collect(),
        checks: Default::default(),
        groups: Default::default(),
    };
    let base = file.source.parent().unwrap_or(Path::new(""));
    let (built, errors) = validate::api_check(&spanned, defaults.as_ref(), &names, &invalid, base);
    located.extend(errors);
    let mut errors: Vec<FieldError> = located
        .into_iter()
        .map(|l| paths.field_error(l.loc, node.loc, l.message, l.hint, file))
        .collect();
    errors.dedup();
    let mut check = match built {
        Some(check) if errors.is_empty() => check,
        _ => return Err(errors),
    };
    if let Some(existing) = file
        .checks
        .iter()
        .find(|c| c.name == check.name && c.origin == Origin::File)
    {
        return Err(vec![FieldError {
            field: Some("name".into()),
            message: format!("duplicate check name '{}'", existing.name),
            hint: Some(format!(
                "{} defines a check with this name; names identify checks across reloads and must be unique",
                file.source.display()
            )),
            unknown_key: false,
        }]);
    }
    let allow = file.server.as_ref().map(|s| s.allow.clone()).unwrap_or_default();
    if let Some(denied) = target_denied(&check, &allow) {
        return Err(vec![FieldError {
            field: Some("target".into()),
            message: denied,
            hint: Some(
                "checks created through the API may only reach what server.allow lists (loopback only when listed); \
                 add the host to server.allow in the config file"
                    .into(),
            ),
            unknown_key: false,
        }]);
    }
    check.options.address_policy = Some(allow);
    check.origin = Origin::Api;
    Ok(check)
}

/// Why the allow-list refuses the check's target before any lookup (the probes also
/// check every address they connect to).
fn target_denied(check: &CheckConfig, allow: &AddressPolicy) -> Option<String> {
    let spec = check.target.spec.as_ref().ok()?;
    let (host, port) = match spec {
        TargetSpec::Http { url } => {
            let host = match url.host()? {
                url::Host::Ipv4(ip) => Host::Ip(IpAddr::V4(ip)),
                url::Host::Ipv6(ip) => Host::Ip(IpAddr::V6(ip)),
                url::Host::Domain(name) => Host::Name(name.to_ascii_lowercase()),
            };
            (host, url.port_or_known_default())
        }
        TargetSpec::Tcp { host, port } | TargetSpec::Tls { host, port } => (host.clone(), Some(*port)),
        TargetSpec::Icmp { host } => (host.clone(), None),
        TargetSpec::Dns { server, .. } => match server {
            Some(addr) => (Host::Ip(addr.ip()), Some(addr.port())),
            None => return Some("a DNS check through the API must name its server (dns://NAME?server=ADDRESS)".into()),
        },
    };
    allow.check_host(&host, port).err().map(|denied| denied.0)
}

/// Synthetic locations and the field path each one stands for.
#[derive(Default)]
struct Paths {
    next: usize,
    by_loc: HashMap<Loc, String>,
}

impl Paths {
    fn loc(&mut self, path: String) -> Loc {
        self.next += 1;
        let loc = Loc {
            line: 0,
            column: self.next,
            offset: self.next,
        };
        self.by_loc.insert(loc, path);
        loc
    }

    fn node(&mut self, value: &serde_json::Value, path: String, depth: usize) -> Node {
        use serde_json::Value;
        let loc = self.loc(path.clone());
        let kind = match value {
            Value::Null => Kind::Null,
            Value::Bool(b) => Kind::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Kind::Int(i),
                None => Kind::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => Kind::Str(s.clone()),
            // Deeper than any check needs: the validator reports the null it finds.
            _ if depth >= super::tree::MAX_DEPTH => Kind::Null,
            Value::Array(items) => Kind::Seq(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.node(item, format!("{path}[{i}]"), depth + 1))
                    .collect(),
            ),
            Value::Object(entries) => Kind::Map(
                entries
                    .iter()
                    .map(|(name, item)| {
                        let child = if path.is_empty() {
                            name.clone()
                        } else {
                            format!("{path}.{name}")
                        };
                        let key = Key {
                            name: name.clone(),
                            loc: self.loc(child.clone()),
                        };
                        (key, self.node(item, child, depth + 1))
                    })
                    .collect(),
            ),
        };
        Node::new(kind, loc)
    }

    fn field_error(
        &self,
        loc: Loc,
        root: Loc,
        message: String,
        hint: Option<String>,
        file: &MonitorConfig,
    ) -> FieldError {
        let unknown_key = message.starts_with("unknown key '");
        let field = match self.by_loc.get(&loc) {
            // A missing key is reported at the object or its name ("has no 'target'").
            Some(path) => match missing_key(&message) {
                Some(key) if loc == root || path == "name" => Some(key),
                _ if loc == root => None,
                _ => Some(path.clone()),
            },
            None => None,
        };
        let from_file = loc.line > 0;
        let message = if from_file {
            format!(
                "{message} (inherited from defaults in {}:{}:{})",
                file.source.display(),
                loc.line,
                loc.column
            )
        } else {
            message
        };
        FieldError {
            field,
            message,
            hint,
            unknown_key,
        }
    }
}

/// The key a "has no 'KEY'" message is about.
fn missing_key(message: &str) -> Option<String> {
    let (_, keys) = de::struct_fields::<RawCheck>();
    let start = message.find(" no '")? + 5;
    let end = start + message[start..].find('\'')?;
    let key = &message[start..end];
    keys.contains(&key).then(|| key.to_owned())
}
