//! Docker ids: validation and the `sha256:` prefix.

/// A full 64-hex id (container, image, chain id, overlay2 cache id).
pub fn is_full_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// `sha256:<hex>` → `<hex>`; anything else unchanged.
pub fn strip_sha256(s: &str) -> &str {
    s.strip_prefix("sha256:").unwrap_or(s)
}

/// Parses `sha256:<64 hex>` (or bare hex) into the hex digest.
pub fn parse_digest(s: &str) -> Option<&str> {
    let hex = strip_sha256(s.trim());
    is_full_id(hex).then_some(hex)
}

/// The first 12 characters, as docker shows ids.
pub fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        let id = "0123456789abcdef".repeat(4);
        assert!(is_full_id(&id));
        assert!(!is_full_id(&id.to_uppercase()));
        assert!(!is_full_id("../../etc"));
        assert_eq!(parse_digest(&format!("sha256:{id}\n")), Some(id.as_str()));
        assert_eq!(short(&id), "0123456789ab");
    }
}
