//! Registry credentials from Docker's config format: `~/.docker/config.json` (or
//! `$DOCKER_CONFIG/config.json`), a file named with `--authfile`, and the pod's
//! `imagePullSecrets` (files in podctl's pull-secrets dir, each holding what a
//! `kubernetes.io/dockerconfigjson` Secret holds).
//!
//! Keys of `auths` are matched the way the kubelet matches them: a key is a registry host
//! (with port), optionally followed by a repository path prefix; URLs such as
//! `https://index.docker.io/v1/` are reduced to their host. The longest matching key wins, so a
//! credential for `registry.example/team` beats one for `registry.example`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use super::ImageError;

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// HTTP basic auth, also used to obtain bearer tokens.
    Basic { username: String, password: String },
    /// A registry token (`registrytoken`), sent as is.
    Bearer(String),
}

impl std::fmt::Debug for Credential {
    // Never print secrets, even in debug logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Self::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

/// A credential and the file it came from (for error messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub credential: Credential,
    pub source: PathBuf,
}

// No Debug: these hold secrets.
#[derive(Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Default, Deserialize)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    registrytoken: Option<String>,
    identitytoken: Option<String>,
}

/// The credentials of one config file, keyed by normalized `auths` key. An unusable entry is
/// kept as its problem: it fails only the pulls it would have served.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    file: PathBuf,
    entries: Vec<(String, Result<Found, String>)>,
}

impl Keyring {
    /// Reads a Docker config file. A missing file is an empty keyring only when `optional`.
    pub fn load(path: &Path, optional: bool) -> Result<Self, ImageError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self::default())
            }
            Err(source) => {
                return Err(ImageError::Io {
                    action: "reading credentials file",
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        Self::parse(&bytes, path)
    }

    /// Parses a Docker config document; `path` names it in errors and in [`Found::source`].
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self, ImageError> {
        let bad = |problem: String| ImageError::BadCredentials {
            file: path.to_path_buf(),
            problem,
        };
        // serde's message could quote a value (a numeric password): give only the place.
        let file: ConfigFile = serde_json::from_slice(bytes).map_err(|e| {
            bad(format!(
                "not a Docker config ({{\"auths\": {{...}}}}): error at line {} column {}",
                e.line(),
                e.column()
            ))
        })?;
        let entries = file
            .auths
            .into_iter()
            .map(|(key, entry)| {
                let found = credential(&key, entry).map(|credential| Found {
                    credential,
                    source: path.to_path_buf(),
                });
                (normalize_key(&key), found)
            })
            .filter(|(_, found)| !matches!(found, Err(p) if p.is_empty()))
            .collect();
        Ok(Self {
            file: path.to_path_buf(),
            entries,
        })
    }

    /// The credential for `repository` (`host[:port]/path`, as in a normalized reference
    /// without tag) with the longest matching key.
    pub fn find(&self, repository: &str) -> Result<Option<&Found>, ImageError> {
        let best = self
            .entries
            .iter()
            .filter(|(key, _)| {
                repository == key
                    || repository
                        .strip_prefix(key.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            })
            .max_by_key(|(key, _)| key.len());
        match best {
            None => Ok(None),
            Some((_, Ok(found))) => Ok(Some(found)),
            Some((_, Err(problem))) => Err(ImageError::BadCredentials {
                file: self.file.clone(),
                problem: problem.clone(),
            }),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The credential of one `auths` entry; `Err("")` for an entry without one (credential
/// helpers write those), skipped.
fn credential(key: &str, entry: AuthEntry) -> Result<Credential, String> {
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|e| format!("auths[{key:?}].auth is not base64: {e}"))?;
        let decoded =
            String::from_utf8(decoded).map_err(|_| format!("auths[{key:?}].auth is not UTF-8"))?;
        let (username, password) = decoded
            .split_once(':')
            .ok_or_else(|| format!("auths[{key:?}].auth must encode \"user:password\""))?;
        Ok(Credential::Basic {
            username: username.to_string(),
            password: password.to_string(),
        })
    } else if let (Some(username), Some(password)) = (entry.username, entry.password) {
        Ok(Credential::Basic { username, password })
    } else if let Some(token) = entry.registrytoken {
        Ok(Credential::Bearer(token))
    } else if entry.identitytoken.is_some() {
        Err(format!(
            "auths[{key:?}] has only an identitytoken (OAuth refresh token), which podctl \
             does not support: use a user and password or a registrytoken"
        ))
    } else {
        Err(String::new())
    }
}

/// `https://index.docker.io/v1/` -> `docker.io`; `http://reg:5000/ns/` -> `reg:5000/ns`.
fn normalize_key(key: &str) -> String {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let (host, path) = match key.split_once('/') {
        Some((h, p)) => (h, p.trim_end_matches('/')),
        None => (key, ""),
    };
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        h => h,
    };
    // Docker's own key for Docker Hub ends in `/v1/`: that is an API version, not a path.
    let path = if path == "v1" || path == "v2" {
        ""
    } else {
        path
    };
    if path.is_empty() {
        host.to_string()
    } else {
        format!("{host}/{path}")
    }
}

/// Docker's default config file: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".docker/config.json"))
}

/// Where the credentials of a pull come from, in the kubelet's order: the pod's pull secrets
/// first, then the host's (the `--authfile`, or Docker's config).
#[derive(Debug, Clone, Default)]
pub struct CredentialSources {
    /// `--authfile`: a Docker config file; when unset, Docker's default file is read if it
    /// exists.
    pub authfile: Option<PathBuf>,
    /// Directory of pull-secret files `<name>.json` named by `imagePullSecrets`.
    pub pull_secrets_dir: Option<PathBuf>,
}

impl CredentialSources {
    /// The credential for `repository`, looking at the pull secrets `secrets` (names) first.
    /// A secret without a file is skipped with a warning, as the kubelet skips a missing
    /// secret; a malformed one is an error.
    pub fn find(&self, repository: &str, secrets: &[String]) -> Result<Option<Found>, ImageError> {
        for name in secrets {
            let Some(dir) = &self.pull_secrets_dir else {
                tracing::warn!(secret = %name, "imagePullSecrets: no pull-secrets dir is set; ignoring the secret");
                continue;
            };
            // No Secret can have another name, and the name must not walk out of the dir.
            let dns_subdomain = !name.is_empty()
                && name.len() <= 253
                && name.split('.').all(|label| {
                    !label.is_empty()
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                        && label
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                });
            if !dns_subdomain {
                tracing::warn!(secret = %name, "imagePullSecrets: not a valid Secret name; ignoring it");
                continue;
            }
            let path = dir.join(format!("{name}.json"));
            if !path.exists() {
                tracing::warn!(secret = %name, file = %path.display(), "imagePullSecrets: secret file not found; pulling without it");
                continue;
            }
            if let Some(found) = Keyring::load(&path, false)?.find(repository)? {
                return Ok(Some(found.clone()));
            }
        }
        let host = match &self.authfile {
            Some(path) => Keyring::load(path, false)?,
            None => match docker_config_path() {
                Some(path) => Keyring::load(&path, true)?,
                None => Keyring::default(),
            },
        };
        Ok(host.find(repository)?.cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring(json: &str) -> Keyring {
        Keyring::parse(json.as_bytes(), Path::new("/cfg.json")).unwrap()
    }

    fn basic(u: &str, p: &str) -> Credential {
        Credential::Basic {
            username: u.into(),
            password: p.into(),
        }
    }

    #[test]
    fn auth_field_is_base64_user_and_password() {
        // "alice:s3cr:et" — the password may itself hold a colon.
        let k = keyring(r#"{"auths":{"127.0.0.1:5000":{"auth":"YWxpY2U6czNjcjpldA=="}}}"#);
        let found = k.find("127.0.0.1:5000/app").unwrap().unwrap();
        assert_eq!(found.credential, basic("alice", "s3cr:et"));
        assert_eq!(found.source, Path::new("/cfg.json"));
        assert!(k.find("127.0.0.1:5001/app").unwrap().is_none());
        assert!(k.find("127.0.0.1:50000/app").unwrap().is_none());
    }

    #[test]
    fn docker_hub_keys_and_urls_are_normalized() {
        let k = keyring(
            r#"{"auths":{"https://index.docker.io/v1/":{"username":"u","password":"p"},
                         "http://reg.example:5000/":{"registrytoken":"tok"}}}"#,
        );
        assert_eq!(
            k.find("docker.io/library/busybox")
                .unwrap()
                .unwrap()
                .credential,
            basic("u", "p")
        );
        assert_eq!(
            k.find("reg.example:5000/x/y").unwrap().unwrap().credential,
            Credential::Bearer("tok".into())
        );
    }

    #[test]
    fn the_longest_path_prefix_wins() {
        let k = keyring(
            r#"{"auths":{"reg.example":{"username":"all","password":"1"},
                         "reg.example/team":{"username":"team","password":"2"}}}"#,
        );
        assert_eq!(
            k.find("reg.example/team/app").unwrap().unwrap().credential,
            basic("team", "2")
        );
        assert_eq!(
            k.find("reg.example/teamx/app").unwrap().unwrap().credential,
            basic("all", "1")
        );
    }

    #[test]
    fn a_bad_entry_fails_only_the_pulls_it_would_serve() {
        let err = |json: &str| keyring(json).find("r/app").unwrap_err().to_string();
        assert!(
            err(r#"{"auths":{"r":{"auth":"%%%"}}}"#).contains("auths[\"r\"].auth is not base64")
        );
        assert!(err(r#"{"auths":{"r":{"auth":"bm9jb2xvbg=="}}}"#).contains("user:password"));
        assert!(err(r#"{"auths":{"r":{"identitytoken":"x"}}}"#).contains("identitytoken"));
        // An unusable entry for another registry does not stop this one's pulls.
        let k =
            keyring(r#"{"auths":{"r":{"identitytoken":"x"},"s":{"username":"u","password":"p"}}}"#);
        assert_eq!(
            k.find("s/app").unwrap().unwrap().credential,
            basic("u", "p")
        );
        assert!(k.find("docker.io/library/busybox").unwrap().is_none());
        // A file that is not a config names the place, never a value (it may be a secret).
        let e = Keyring::parse(
            br#"{"auths":{"r":{"password":12345}}}"#,
            Path::new("/cfg.json"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("/cfg.json: not a Docker config"), "{e}");
        assert!(!e.contains("12345"), "{e}");
        // Entries without credentials (credential helpers write them) are skipped.
        assert!(keyring(r#"{"auths":{"r":{}},"credsStore":"desktop"}"#).is_empty());
    }

    #[test]
    fn credential_debug_hides_secrets() {
        let shown = format!("{:?}", basic("alice", "hunter2"));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!format!("{:?}", Credential::Bearer("tok".into())).contains("tok"));
    }

    #[test]
    fn pull_secrets_come_before_the_host_file() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("host.json");
        std::fs::write(
            &host,
            r#"{"auths":{"reg:1":{"username":"host","password":"h"}}}"#,
        )
        .unwrap();
        let secrets = dir.path().join("secrets");
        std::fs::create_dir(&secrets).unwrap();
        std::fs::write(
            secrets.join("regcred.json"),
            r#"{"auths":{"reg:1":{"username":"pod","password":"p"}}}"#,
        )
        .unwrap();
        let sources = CredentialSources {
            authfile: Some(host.clone()),
            pull_secrets_dir: Some(secrets.clone()),
        };
        let pod = sources
            .find(
                "reg:1/app",
                &["missing".into(), "../host".into(), "regcred".into()],
            )
            .unwrap()
            .unwrap();
        assert_eq!(pod.credential, basic("pod", "p"));
        assert_eq!(pod.source, secrets.join("regcred.json"));
        let node = sources.find("reg:1/app", &[]).unwrap().unwrap();
        assert_eq!(node.credential, basic("host", "h"));
        assert!(sources.find("other:1/app", &[]).unwrap().is_none());
        // A named --authfile that does not exist is an error, not "no credentials".
        let missing = CredentialSources {
            authfile: Some(dir.path().join("nope.json")),
            pull_secrets_dir: None,
        };
        assert!(missing.find("reg:1/app", &[]).is_err());
    }
}
