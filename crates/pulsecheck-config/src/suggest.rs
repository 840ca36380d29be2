//! "Did you mean …?" for unknown keys, values and names.

/// The closest candidate to `word`, if one is close enough to be a likely typo.
pub(crate) fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_lowercase();
    let length = word.chars().count();
    // A third of the word may be wrong, and never all of it ('b' is not a typo of 'a').
    let max = (length / 3).clamp(1, 3).min(length.saturating_sub(1));
    candidates
        .into_iter()
        .map(|c| (edit_distance(&lower, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= max)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// "did you mean 'x'?" or, when nothing is close, "{list_intro}: a, b, c".
pub(crate) fn hint(word: &str, candidates: &[&str], list_intro: &str) -> String {
    match closest(word, candidates.iter().copied()) {
        Some(best) => format!("did you mean '{best}'?"),
        None if candidates.is_empty() => "nothing is accepted here".to_owned(),
        None => format!("{list_intro}: {}", candidates.join(", ")),
    }
}

/// Levenshtein distance with adjacent transpositions counted as one edit (optimal
/// string alignment, from strsim).
fn edit_distance(a: &str, b: &str) -> usize {
    // Long inputs are never typos of short keys; keep the work bounded.
    let (a_len, b_len) = (a.chars().count(), b.chars().count());
    if a_len.abs_diff(b_len) > 3 || a_len > 64 || b_len > 64 {
        return usize::MAX;
    }
    strsim::osa_distance(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_misses_only() {
        let keys = ["interval", "timeout", "channels", "name"];
        assert_eq!(closest("intervall", keys), Some("interval"));
        assert_eq!(closest("timeuot", keys), Some("timeout"));
        assert_eq!(closest("Channels", keys), Some("channels"));
        assert_eq!(closest("color", keys), None);
        assert_eq!(hint("zzz", &["a", "b"], "valid keys"), "valid keys: a, b");
        assert_eq!(edit_distance("slak", "slack"), 1);
        assert_eq!(edit_distance("timeuot", "timeout"), 1, "a transposition is one edit");
        assert_eq!(edit_distance(&"a".repeat(70), &"a".repeat(70)), usize::MAX);
        assert_eq!(closest("b", ["a"]), None);
        assert_eq!(closest("gg", ["g"]), Some("g"));
    }
}
