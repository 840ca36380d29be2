//! `quorum:` of a check: probe it from several locations (the `cluster.location` of the
//! nodes) and declare it down only when `min_down` of them see it down. Each location
//! is a lease of its own, held by a node at that location, so a quorum needs several
//! nodes on a shared PostgreSQL store.

use pulsecheck_core::quorum::Quorum;

use super::de::Spanned;
use super::raw::{RawCheck, RawConfig, RawQuorum};
use super::validate::Validator;

const MAX_LOCATION_CHARS: usize = 100;

/// The quorum of one check (its own or the defaults'), or `None`; errors at their place.
pub(crate) fn quorum(v: &mut Validator<'_>, raw: Option<&Spanned<RawQuorum>>) -> Option<Quorum> {
    let raw = raw?;
    let Some(list) = &raw.value.locations else {
        v.error(
            raw.loc,
            "quorum has no 'locations'",
            Some(
                "list where the check is probed from, e.g. locations: [eu, us, ap] (the nodes' cluster.location)"
                    .into(),
            ),
        );
        return None;
    };
    if list.value.is_empty() {
        v.error(
            list.loc,
            "quorum locations are empty",
            Some("list at least one location, e.g. [eu, us, ap]".into()),
        );
        return None;
    }
    let mut locations: Vec<String> = Vec::with_capacity(list.value.len());
    let mut ok = true;
    for (index, location) in list.value.iter().enumerate() {
        let text = location.value.as_str();
        if text.is_empty()
            || text.chars().count() > MAX_LOCATION_CHARS
            || text.chars().any(|c| c.is_whitespace() || c.is_control() || c == '@')
        {
            v.error(
                location.loc,
                format!("quorum location {text:?} is not a usable name"),
                Some(format!(
                    "use the cluster.location of some nodes: 1 to {MAX_LOCATION_CHARS} characters without spaces, \
                     control characters or '@'"
                )),
            );
            ok = false;
        } else if let Some(first) = list.value[..index].iter().find(|l| l.value == location.value) {
            v.error(
                location.loc,
                format!("quorum location {text:?} is listed twice"),
                Some(format!(
                    "first listed at line {}, column {}; each location votes once",
                    first.loc.line, first.loc.column
                )),
            );
            ok = false;
        } else {
            locations.push(text.to_owned());
        }
    }
    let count = list.value.len();
    let min_down = match &raw.value.min_down {
        None => Quorum::majority(count),
        Some(min) if min.value == 0 || min.value as usize > count => {
            v.error(
                min.loc,
                format!("min_down {} is out of range for {count} location(s)", min.value),
                Some(format!(
                    "use 1 to {count}: how many locations must see the check down (default: a majority, {})",
                    Quorum::majority(count)
                )),
            );
            return None;
        }
        Some(min) => min.value as usize,
    };
    ok.then_some(Quorum { locations, min_down })
}

/// A quorum needs nodes at several locations, hence `cluster:` on a shared store.
pub(crate) fn needs_cluster(v: &mut Validator<'_>, raw: &RawConfig) {
    if raw.cluster.is_some() && raw.store.as_ref().is_none_or(|s| s.value.path.is_none()) {
        return;
    }
    let checks = raw.checks.as_deref().unwrap_or_default().iter();
    let with = |c: &Spanned<RawCheck>| c.value.quorum.as_ref().map(|q| q.loc);
    let mut places: Vec<_> = raw.defaults.iter().filter_map(with).collect();
    places.extend(checks.filter_map(with));
    for loc in places {
        v.error(
            loc,
            "a location quorum needs several nodes on a shared PostgreSQL store",
            Some(
                "add cluster: with a location on each node and store.url: postgres://…, or remove quorum: to \
                 probe from one place"
                    .into(),
            ),
        );
    }
}
