//! Names the engine gives to apps it creates while it works.
//!
//! ToolJet's import is create-only and names are unique, so an update imports under a temporary
//! name and moves the old app aside before the swap. Both names carry a tag derived from the
//! AppImport's identity, so that a later run (even one that lost its state) recognises its own
//! leftovers by name, and never touches another AppImport's.

use sha2::{Digest, Sha256};

/// Every name the engine invents starts with this.
pub const NAME_PREFIX: &str = "tjop-";

/// Stable identity of one AppImport (namespace and name for the controller, file and name for the
/// command line): the same key always yields the same tag.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImportKey {
    pub namespace: String,
    pub name: String,
}

impl ImportKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// Ten hex characters of SHA-256 over `namespace/name`: short enough to keep names under
    /// ToolJet's 50-character limit, long enough that two AppImports never share one.
    pub fn tag(&self) -> String {
        let digest = Sha256::digest(format!("{}/{}", self.namespace, self.name));
        hex::encode(&digest[..5])
    }

    /// Name (and slug) of the old app while a swap moves it aside.
    pub fn aside_name(&self) -> String {
        format!("{NAME_PREFIX}old-{}", self.tag())
    }

    /// Name of a freshly imported app before it takes the real name.
    pub fn temp_name(&self, commit_sha: &str) -> String {
        let short: String = commit_sha.chars().take(8).collect();
        format!("{}{short}", self.temp_prefix())
    }

    /// What every temporary name of this AppImport starts with.
    pub fn temp_prefix(&self) -> String {
        format!("{NAME_PREFIX}tmp-{}-", self.tag())
    }

    /// True for a name this AppImport invented (temporary or aside).
    pub fn owns_name(&self, name: &str) -> bool {
        name == self.aside_name() || name.starts_with(&self.temp_prefix())
    }
}

impl std::fmt::Display for ImportKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_tooljet_limits_and_are_distinct_per_import() {
        let a = ImportKey::new("team-a", "sales");
        let b = ImportKey::new("team-b", "sales");
        assert_ne!(a.tag(), b.tag());
        let temp = a.temp_name("0123456789abcdef0123456789abcdef01234567");
        assert!(temp.len() <= 50, "{temp}");
        assert!(a.aside_name().len() <= 50);
        // Slugs must be lowercase letters, digits and hyphens.
        assert!(
            a.aside_name()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
        assert!(a.owns_name(&temp));
        assert!(a.owns_name(&a.aside_name()));
        assert!(!b.owns_name(&temp));
        assert!(!a.owns_name("Sales Dashboard"));
    }
}
