//! Strict decoding of a manifest's text into a [`Pod`].
//!
//! Two passes over the text: a generic one (YAML syntax, number of documents, `apiVersion`
//! and `kind`, which `k8s-openapi` would accept missing) and a typed one into [`Pod`] that
//! records every key the schema does not know (`k8s-openapi` drops them silently) and the
//! path of a wrongly typed value.

use std::borrow::Cow;

use serde_saphyr::MessageFormatter;

use super::error::{FieldError, ManifestError};
use super::Pod;

/// Parses one `v1 Pod` document; see [`super::parse`].
pub(super) fn parse(text: &str, file: &str) -> Result<Pod, ManifestError> {
    let (text, root) = single_document(text, file)?;
    match &root {
        serde_json::Value::Null => {
            return Err(ManifestError::Empty {
                file: file.to_owned(),
            })
        }
        serde_json::Value::Object(map) => check_header(map, file)?,
        // Not a mapping: the typed pass reports the wrong type with its location.
        _ => {}
    }

    let mut unknown = Vec::new();
    let mut track = serde_path_to_error::Track::new();
    let result = serde_saphyr::with_deserializer_from_str(text, |de| {
        let de = serde_path_to_error::Deserializer::new(de, &mut track);
        serde_ignored::deserialize::<_, _, Pod>(de, |path| unknown.push(ignored_path(&path)))
    });
    let pod = match result {
        Ok(pod) => pod,
        Err(e) => {
            let path = error_path(&track.path());
            return Err(wrong_type(&e, text, file, path));
        }
    };
    // `status` is ignored (see the module docs), so is what this schema version lacks in it.
    unknown.retain(|p: &String| {
        p != "status" && !p.starts_with("status.") && !p.starts_with("status[")
    });
    if !unknown.is_empty() {
        return Err(ManifestError::UnknownFields {
            file: file.to_owned(),
            errors: unknown
                .into_iter()
                .map(|p| FieldError::new(p, "unknown field"))
                .collect(),
        });
    }
    Ok(pod)
}

/// The document's text and its generic value. Empty documents after the pod (a trailing
/// `---`, as generators often leave) are cut off, since kubectl skips them too.
fn single_document<'t>(
    text: &'t str,
    file: &str,
) -> Result<(&'t str, serde_json::Value), ManifestError> {
    let err = match serde_saphyr::from_str(text) {
        Ok(root) => return Ok((text, root)),
        Err(e) => e,
    };
    if !matches!(
        err.without_snippet(),
        serde_saphyr::Error::MultipleDocuments { .. }
    ) {
        return Err(yaml_error(&err, text, file));
    }
    let (line, _) = location(&err);
    let multiple = || ManifestError::MultipleDocuments {
        file: file.to_owned(),
        line,
    };
    // Which documents are empty: `from_multiple` skips them.
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(text).map_err(|e| yaml_error(&e, text, file))?;
    let [only] = docs.as_slice() else {
        return Err(multiple());
    };
    // The error points into the second document: cut at the marker that starts it.
    let mut head_len = 0;
    let mut offset = 0;
    for text_line in text
        .split_inclusive('\n')
        .take(usize::try_from(line).unwrap_or(usize::MAX))
    {
        if text_line.starts_with("---") || text_line.starts_with("...") {
            head_len = offset;
        }
        offset += text_line.len();
    }
    let head = &text[..head_len];
    match serde_saphyr::from_str::<serde_json::Value>(head) {
        Ok(root) if root == *only => Ok((head, root)),
        _ => Err(multiple()),
    }
}

/// `k8s-openapi` accepts a document without `apiVersion`/`kind`; kubectl does not.
fn check_header(
    map: &serde_json::Map<String, serde_json::Value>,
    file: &str,
) -> Result<(), ManifestError> {
    let mut errors = Vec::new();
    for (key, want) in [("apiVersion", "v1"), ("kind", "Pod")] {
        match map.get(key) {
            None | Some(serde_json::Value::Null) => {
                errors.push(FieldError::new(key, "Required value"));
            }
            Some(serde_json::Value::String(s)) if s == want => {}
            Some(serde_json::Value::String(s)) if s.is_empty() => {
                errors.push(FieldError::new(key, "Required value"));
            }
            Some(other) => errors.push(FieldError::new(
                key,
                format!(
                    "Unsupported value: {}: supported values: {want:?}",
                    json_scalar(other)
                ),
            )),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ManifestError::NotAPod {
            file: file.to_owned(),
            errors,
        })
    }
}

/// A value as kubectl quotes it in `Unsupported value: "x"`.
fn json_scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

/// Maps an error of the generic pass: the text is not (one document of) YAML.
fn yaml_error(e: &serde_saphyr::Error, text: &str, file: &str) -> ManifestError {
    let (line, column) = location(e);
    ManifestError::Syntax {
        file: file.to_owned(),
        line,
        column,
        message: message(e, text),
    }
}

fn wrong_type(e: &serde_saphyr::Error, text: &str, file: &str, path: String) -> ManifestError {
    let (line, column) = location(e);
    ManifestError::WrongType {
        file: file.to_owned(),
        path,
        message: message(e, text),
        line,
        column,
    }
}

fn location(e: &serde_saphyr::Error) -> (u64, u64) {
    e.location().map_or((0, 0), |l| (l.line(), l.column()))
}

/// The message alone: our errors print the location and path themselves.
fn message(e: &serde_saphyr::Error, text: &str) -> String {
    let inner = e.without_snippet();
    let msg: Cow<'_, str> = match (inner, scalar_at(e, text)) {
        // serde-saphyr says only "invalid i32"; name the value as serde would.
        (serde_saphyr::Error::InvalidScalar { ty, .. }, Some(value)) => {
            if value.parse::<f64>().is_ok() {
                Cow::Owned(format!("invalid value: {value}, expected {ty}"))
            } else {
                Cow::Owned(format!("invalid type: string {value:?}, expected {ty}"))
            }
        }
        _ => serde_saphyr::UserMessageFormatter.format_message(inner),
    };
    // The text can quote input; keep a hostile value from writing control characters.
    msg.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// The source text an error points at, when it is a one-line scalar.
fn scalar_at<'t>(e: &serde_saphyr::Error, text: &'t str) -> Option<&'t str> {
    let span = e.location()?.span();
    let start = usize::try_from(span.byte_offset()?).ok()?;
    let len = usize::try_from(span.byte_len()?).ok()?;
    let raw = text.get(start..start.checked_add(len)?)?;
    let value = raw.trim_matches(|c| c == '"' || c == '\'');
    (!value.is_empty() && !value.contains('\n')).then_some(value)
}

/// `spec.?.containers.?.0.volumeMount` as kubectl writes it: `spec.containers[0].volumeMount`.
fn ignored_path(path: &serde_ignored::Path<'_>) -> String {
    fn walk(path: &serde_ignored::Path<'_>, out: &mut String) {
        use serde_ignored::Path;
        match path {
            Path::Root => {}
            Path::Seq { parent, index } => {
                walk(parent, out);
                out.push_str(&format!("[{index}]"));
            }
            Path::Map { parent, key } => {
                walk(parent, out);
                push_key(out, key);
            }
            Path::Some { parent }
            | Path::NewtypeStruct { parent }
            | Path::NewtypeVariant { parent } => walk(parent, out),
        }
    }
    let mut out = String::new();
    walk(path, &mut out);
    out
}

/// The path of a wrongly typed value, in the same notation as [`ignored_path`].
fn error_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => push_key(&mut out, key),
            Segment::Enum { variant } => push_key(&mut out, variant),
            Segment::Unknown => push_key(&mut out, "?"),
        }
    }
    out
}

/// Appends a map key; keys that are not plain names (label keys such as
/// `app.kubernetes.io/name`) are bracketed, as the API server does.
fn push_key(out: &mut String, key: &str) {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(key);
    } else {
        out.push_str(&format!("[{key}]"));
    }
}
