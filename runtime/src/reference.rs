//! Image references, normalized the way Docker and Kubernetes read them.
//!
//! A manifest that says `image: busybox` and an archive tagged `busybox:latest` must land on the
//! same containerd image record, so every name podctl stores or looks up goes through
//! [`normalize`] first: `busybox` becomes `docker.io/library/busybox:latest`. The grammar is the
//! one of `github.com/distribution/reference` (the parser behind `docker` and the kubelet),
//! restricted to what podctl needs: lowercase path components, an optional registry (a first
//! component with a `.` or `:`, or `localhost`), an optional tag, an optional digest.

/// Why a string is not an image reference; each variant names the reference as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid image reference: empty")]
    Empty,
    #[error("invalid image reference {reference:?}: repository name must be lowercase")]
    Uppercase { reference: String },
    #[error("invalid image reference {reference:?}: {reason}")]
    Malformed {
        reference: String,
        reason: &'static str,
    },
    #[error(
        "invalid image reference {reference:?}: bad digest {digest:?} \
         (expected sha256:<64 lowercase hex> or sha512:<128 lowercase hex>)"
    )]
    Digest { reference: String, digest: String },
    #[error(
        "invalid image reference {reference:?}: bad tag {tag:?} \
         (letters, digits, '_', '.', '-', at most 128, not starting with '.' or '-')"
    )]
    Tag { reference: String, tag: String },
    #[error("invalid image reference {reference:?}: repository name longer than 255 characters")]
    TooLong { reference: String },
    #[error(
        "invalid image reference {reference:?}: a 64-character hexadecimal string is an image id, \
         not a name"
    )]
    LooksLikeId { reference: String },
}

const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LEN: usize = 255;

/// Returns the fully qualified form of `reference`: registry, repository path, and the tag
/// (`latest` when neither a tag nor a digest is given) and/or digest.
pub fn normalize(reference: &str) -> Result<String, ReferenceError> {
    let malformed = |reason| ReferenceError::Malformed {
        reference: reference.to_string(),
        reason,
    };
    if reference.is_empty() {
        return Err(ReferenceError::Empty);
    }
    if reference.trim() != reference || reference.chars().any(char::is_whitespace) {
        return Err(malformed("contains whitespace"));
    }

    let (rest, digest) = match reference.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (reference, None),
    };
    if let Some(digest) = digest {
        if !is_valid_digest(digest) {
            return Err(ReferenceError::Digest {
                reference: reference.to_string(),
                digest: digest.to_string(),
            });
        }
    }
    // A tag is a `:` after the last `/` (a `:` before it is a registry port).
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag {
        if !is_valid_tag(tag) {
            return Err(ReferenceError::Tag {
                reference: reference.to_string(),
                tag: tag.to_string(),
            });
        }
    }
    if name.is_empty() {
        return Err(malformed("no repository name"));
    }
    if digest.is_none() && tag.is_none() && is_image_id(name) {
        return Err(ReferenceError::LooksLikeId {
            reference: reference.to_string(),
        });
    }

    let (domain, path) = split_domain(name);
    if let Some(domain) = domain {
        if !is_valid_domain(domain) {
            return Err(malformed("invalid registry host"));
        }
    }
    if path.is_empty() {
        return Err(malformed("no repository name after the registry"));
    }
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(ReferenceError::Uppercase {
            reference: reference.to_string(),
        });
    }
    for component in path.split('/') {
        if !is_valid_path_component(component) {
            return Err(malformed(
                "invalid repository path (components are lowercase letters and digits, \
                 separated by '.', '_', '__' or '-', joined by '/')",
            ));
        }
    }

    let domain = match domain {
        None | Some(LEGACY_DEFAULT_DOMAIN) => DEFAULT_DOMAIN,
        Some(d) => d,
    };
    let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
        format!("{OFFICIAL_REPO_PREFIX}{path}")
    } else {
        path.to_string()
    };
    let full_name = format!("{domain}/{path}");
    if full_name.len() > MAX_NAME_LEN {
        return Err(ReferenceError::TooLong {
            reference: reference.to_string(),
        });
    }

    let mut out = full_name;
    match (tag, digest) {
        (Some(tag), _) => {
            out.push(':');
            out.push_str(tag);
        }
        (None, None) => {
            out.push(':');
            out.push_str(DEFAULT_TAG);
        }
        (None, Some(_)) => {}
    }
    if let Some(digest) = digest {
        out.push('@');
        out.push_str(digest);
    }
    Ok(out)
}

/// The short form people type and Docker prints: `docker.io/library/busybox:latest` becomes
/// `busybox:latest`, `docker.io/user/app:1` becomes `user/app:1`; other registries stay.
pub fn familiar(name: &str) -> String {
    let Some(rest) = name.strip_prefix("docker.io/") else {
        return name.to_string();
    };
    match rest.strip_prefix(OFFICIAL_REPO_PREFIX) {
        // `library/a/b` is not an official image: keep the prefix.
        Some(short) if !repository_part(short).contains('/') => short.to_string(),
        _ => rest.to_string(),
    }
}

/// The part of `name` before its tag or digest.
fn repository_part(name: &str) -> &str {
    let name = name.split('@').next().unwrap_or(name);
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    match name[last_slash..].find(':') {
        Some(i) => &name[..last_slash + i],
        None => name,
    }
}

/// Splits off the registry host: the first component when it has a `.` or `:`, is
/// `localhost`, or has uppercase letters (which no repository path may have).
fn split_domain(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn is_valid_domain(domain: &str) -> bool {
    let (host, port) = if domain.starts_with('[') {
        match domain.find(']') {
            Some(end) => match &domain[end + 1..] {
                "" => (&domain[..=end], None),
                rest => match rest.strip_prefix(':') {
                    Some(port) => (&domain[..=end], Some(port)),
                    None => return false,
                },
            },
            None => return false,
        }
    } else {
        match domain.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (domain, None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn is_valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`
fn is_valid_tag(tag: &str) -> bool {
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-')
}

/// The digests podctl accepts: sha256 and sha512 in lowercase hex.
fn is_valid_digest(digest: &str) -> bool {
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return false;
    };
    let len = match algorithm {
        "sha256" => 64,
        "sha512" => 128,
        _ => return false,
    };
    hex.len() == len
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_image_id(name: &str) -> bool {
    name.len() == 64
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn ok(input: &str) -> String {
        normalize(input).unwrap_or_else(|e| panic!("{input}: {e}"))
    }

    #[test]
    fn official_images_get_registry_library_and_latest() {
        assert_eq!(ok("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(ok("library/busybox"), "docker.io/library/busybox:latest");
        assert_eq!(ok("docker.io/busybox"), "docker.io/library/busybox:latest");
        assert_eq!(
            ok("index.docker.io/busybox:1"),
            "docker.io/library/busybox:1"
        );
    }

    #[test]
    fn user_images_keep_their_path() {
        assert_eq!(ok("user/app"), "docker.io/user/app:latest");
        assert_eq!(ok("user/team/app:v2"), "docker.io/user/team/app:v2");
        assert_eq!(
            ok("my-user/my_app.x__y"),
            "docker.io/my-user/my_app.x__y:latest"
        );
    }

    #[test]
    fn registries_are_recognized() {
        assert_eq!(ok("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(ok("localhost/app"), "localhost/app:latest");
        assert_eq!(ok("quay.io/coreos/etcd:v3"), "quay.io/coreos/etcd:v3");
        assert_eq!(ok("registry:5000/app"), "registry:5000/app:latest");
        assert_eq!(ok("[::1]:5000/app"), "[::1]:5000/app:latest");
        // A registry alone with a single component gets no `library/`.
        assert_eq!(ok("ghcr.io/app"), "ghcr.io/app:latest");
    }

    #[test]
    fn tags_and_digests() {
        assert_eq!(ok("app:1.0"), "docker.io/library/app:1.0");
        assert_eq!(
            ok(&format!("app@sha256:{HEX}")),
            format!("docker.io/library/app@sha256:{HEX}")
        );
        assert_eq!(
            ok(&format!("app:1.0@sha256:{HEX}")),
            format!("docker.io/library/app:1.0@sha256:{HEX}")
        );
        assert_eq!(
            ok(&format!("localhost:5000/app@sha256:{HEX}")),
            format!("localhost:5000/app@sha256:{HEX}")
        );
    }

    #[test]
    fn normalizing_twice_changes_nothing() {
        for input in [
            "busybox",
            "user/app:1",
            "localhost:5000/a/b",
            "quay.io/x/y:z",
        ] {
            let once = ok(input);
            assert_eq!(ok(&once), once);
        }
    }

    #[test]
    fn uppercase_path_is_refused_naming_the_reference() {
        let err = normalize("Busybox").unwrap_err();
        assert_eq!(
            err,
            ReferenceError::Uppercase {
                reference: "Busybox".into()
            }
        );
        assert!(err.to_string().contains("\"Busybox\""), "{err}");
        assert!(err.to_string().contains("lowercase"), "{err}");
        assert!(matches!(
            normalize("quay.io/User/app"),
            Err(ReferenceError::Uppercase { .. })
        ));
        // Uppercase is fine in a registry host and in a tag.
        assert_eq!(ok("Registry.example/app:V1"), "Registry.example/app:V1");
    }

    #[test]
    fn malformed_references_are_refused() {
        assert_eq!(normalize(""), Err(ReferenceError::Empty));
        for bad in [
            "app@sha256:abc",
            "app@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
            &format!("app@md5:{HEX}"),
            "app@",
        ] {
            assert!(
                matches!(normalize(bad), Err(ReferenceError::Digest { .. })),
                "{bad}"
            );
        }
        for bad in [
            "app:",
            "app:-x",
            "app:a/b",
            &format!("app:{}", "x".repeat(129)),
        ] {
            assert!(normalize(bad).is_err(), "{bad}");
        }
        for bad in [
            "/app",
            "app/",
            "a//b",
            "-app",
            "app-",
            "a...b",
            "a___b",
            "ap p",
            " app",
            "localhost:/app",
            "localhost:5000/",
            "a$b",
        ] {
            assert!(normalize(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            normalize(HEX),
            Err(ReferenceError::LooksLikeId { .. })
        ));
        assert!(matches!(
            normalize(&"a".repeat(300)),
            Err(ReferenceError::TooLong { .. })
        ));
        let err = normalize("app@sha256:abc").unwrap_err().to_string();
        assert!(
            err.contains("\"app@sha256:abc\"") && err.contains("digest"),
            "{err}"
        );
    }

    #[test]
    fn familiar_shortens_docker_hub_names_only() {
        assert_eq!(
            familiar("docker.io/library/busybox:latest"),
            "busybox:latest"
        );
        assert_eq!(familiar("docker.io/user/app:1"), "user/app:1");
        assert_eq!(familiar("docker.io/library/a/b:1"), "library/a/b:1");
        assert_eq!(
            familiar(&format!("docker.io/library/app@sha256:{HEX}")),
            format!("app@sha256:{HEX}")
        );
        assert_eq!(familiar("quay.io/x/y:z"), "quay.io/x/y:z");
        assert_eq!(
            familiar("localhost:5000/app:latest"),
            "localhost:5000/app:latest"
        );
    }
}
