//! Rendezvous (highest random weight) hashing: which live member owns a key. Every node
//! computes the same answer from the same member list without talking to the others,
//! and a member joining or leaving moves only the keys it gains or had.
//!
//! The hash is xxh3-64, which is specified byte for byte: nodes built by different
//! compilers or on different platforms agree (std's `DefaultHasher` promises neither).

use xxhash_rust::xxh3::xxh3_64;

use crate::cluster::Member;

/// The weight of `key` on `node`: a stable 64-bit hash of both. The node's length comes
/// first so that ("ab", "c") and ("a", "bc") hash differently.
pub fn weight(node: &str, key: &str) -> u64 {
    let mut bytes = Vec::with_capacity(8 + node.len() + key.len());
    bytes.extend_from_slice(&(node.len() as u64).to_le_bytes());
    bytes.extend_from_slice(node.as_bytes());
    bytes.extend_from_slice(key.as_bytes());
    xxh3_64(&bytes)
}

/// The member that owns `key`: the highest weight, ties (astronomically rare) broken by
/// node id so every node still agrees. `None` without members.
pub fn owner<'a>(members: &'a [Member], key: &str) -> Option<&'a Member> {
    members
        .iter()
        .max_by(|a, b| (weight(&a.node, key), &a.node).cmp(&(weight(&b.node, key), &b.node)))
}

/// Whether `node` owns `key` among `members`.
pub fn owns(members: &[Member], node: &str, key: &str) -> bool {
    owner(members, key).is_some_and(|m| m.node == node)
}

/// The member that owns `key` when it must run at `location`: only members there are
/// candidates (`None` when none is live); without a location, every member.
pub fn owner_at<'a>(members: &'a [Member], key: &str, location: Option<&str>) -> Option<&'a Member> {
    match location {
        None => owner(members, key),
        Some(location) => members
            .iter()
            .filter(|m| m.location.as_deref() == Some(location))
            .max_by(|a, b| (weight(&a.node, key), &a.node).cmp(&(weight(&b.node, key), &b.node))),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    fn members(names: &[String]) -> Vec<Member> {
        names
            .iter()
            .map(|n| Member {
                node: n.clone(),
                location: None,
            })
            .collect()
    }

    fn assignment(members: &[Member], keys: &[String]) -> HashMap<String, String> {
        keys.iter()
            .map(|k| (k.clone(), owner(members, k).unwrap().node.clone()))
            .collect()
    }

    #[test]
    fn the_hash_is_the_same_everywhere() {
        // Pinned values: a change here would move every check on upgrade.
        assert_eq!(weight("node-a", "api"), weight("node-a", "api"));
        assert_ne!(weight("ab", "c"), weight("a", "bc"));
        assert_eq!(weight("", ""), xxh3_64(&[0; 8]));
        assert_eq!(format!("{:016x}", xxh3_64(b"")), "2d06800538d394c2");
    }

    #[test]
    fn no_members_no_owner() {
        assert!(owner(&[], "api").is_none());
    }

    #[test]
    fn a_located_key_goes_to_a_member_at_its_location_only() {
        let at = |node: &str, location: Option<&str>| Member {
            node: node.into(),
            location: location.map(str::to_owned),
        };
        let members = vec![
            at("eu-1", Some("eu")),
            at("eu-2", Some("eu")),
            at("us-1", Some("us")),
            at("nowhere", None),
        ];
        let mut eu_owners = std::collections::HashSet::new();
        for i in 0..200 {
            let key = format!("check-{i}@eu");
            let owner = owner_at(&members, &key, Some("eu")).unwrap();
            assert_eq!(owner.location.as_deref(), Some("eu"), "{key} went to {}", owner.node);
            eu_owners.insert(owner.node.clone());
            assert_eq!(
                owner_at(&members, &format!("check-{i}@us"), Some("us")).unwrap().node,
                "us-1"
            );
        }
        assert_eq!(eu_owners.len(), 2, "both eu members share the eu keys");
        assert!(owner_at(&members, "api@ap", Some("ap")).is_none(), "nobody at ap");
        // Without a location, every member is a candidate, as before.
        assert_eq!(owner_at(&members, "api", None), owner(&members, "api"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Removing one member moves exactly the keys it owned; the others stay put.
        #[test]
        fn leaving_moves_only_the_leavers_keys(
            names in proptest::collection::hash_set("[a-z0-9-]{1,12}", 2..8),
            leaver in any::<proptest::sample::Index>(),
        ) {
            let names: Vec<String> = names.into_iter().collect();
            let keys: Vec<String> = (0..500).map(|i| format!("check-{i}")).collect();
            let all = members(&names);
            let gone = leaver.get(&names).clone();
            let rest: Vec<Member> = all.iter().filter(|m| m.node != gone).cloned().collect();
            let before = assignment(&all, &keys);
            let after = assignment(&rest, &keys);
            for key in &keys {
                if before[key] == gone {
                    prop_assert_ne!(&after[key], &gone);
                } else {
                    prop_assert_eq!(&after[key], &before[key], "{} moved though its owner stayed", key);
                }
            }
        }

        /// A member joining N takes only keys (from anyone), about 1/(N+1) of them.
        #[test]
        fn joining_takes_about_a_fair_share(
            names in proptest::collection::hash_set("[a-z0-9-]{1,12}", 1..8),
            joiner in "[A-Z]{1,12}",
        ) {
            let names: Vec<String> = names.into_iter().collect();
            let keys: Vec<String> = (0..2000).map(|i| format!("check-{i}")).collect();
            let before = assignment(&members(&names), &keys);
            let mut grown = names.clone();
            grown.push(joiner.clone());
            let after = assignment(&members(&grown), &keys);
            let mut moved = 0usize;
            for key in &keys {
                if after[key] != before[key] {
                    prop_assert_eq!(&after[key], &joiner, "a key moved between old members");
                    moved += 1;
                }
            }
            let fair = keys.len() / grown.len();
            // Binomial spread: well within half to one and a half times the fair share.
            prop_assert!(moved * 2 >= fair && moved * 2 <= fair * 3, "moved {} of {}, fair {}", moved, keys.len(), fair);
        }
    }
}
