//! `mkimage --out FILE.tar [--name NAME] [--gzip] [--layers N --layer-size BYTES]`: writes the
//! test image (the host's static busybox as an OCI image layout tarball, plus N uncompressed
//! layers of BYTES pseudo-random bytes each) for `make demo` and `make bench`, with the same
//! code the integration tests use.

use std::path::PathBuf;
use std::process::ExitCode;

use podctl_integration_tests::{oci_image_tar, OciTarOptions};

const USAGE: &str =
    "usage: mkimage --out FILE.tar [--name NAME] [--gzip] [--layers N --layer-size BYTES]";

fn main() -> ExitCode {
    let mut out = None;
    let mut name = "busybox".to_string();
    let mut gzip = false;
    let mut layers: Option<usize> = None;
    let mut layer_size: Option<usize> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => out = args.next().map(PathBuf::from),
            "--name" => name = args.next().unwrap_or_default(),
            "--gzip" => gzip = true,
            "--layers" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) => layers = Some(n),
                None => return usage("--layers takes a number"),
            },
            "--layer-size" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) => layer_size = Some(n),
                None => return usage("--layer-size takes a number of bytes"),
            },
            _ => return usage(&format!("unknown argument {a:?}")),
        }
    }
    let Some(out) = out else {
        return usage("--out is required");
    };
    let extra_layers = match (layers, layer_size) {
        (None, None) => Vec::new(),
        (Some(n), Some(size)) => vec![size; n],
        _ => return usage("--layers and --layer-size go together"),
    };
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("mkimage: temp dir: {e}");
            return ExitCode::from(1);
        }
    };
    let built = oci_image_tar(
        dir.path(),
        &OciTarOptions {
            gzip,
            extra_layers,
            ..OciTarOptions::named(&name)
        },
    );
    if let Err(e) = std::fs::rename(&built, &out).or_else(|_| std::fs::copy(&built, &out).map(drop))
    {
        eprintln!("mkimage: writing {}: {e}", out.display());
        return ExitCode::from(1);
    }
    println!("{}", out.display());
    ExitCode::SUCCESS
}

fn usage(why: &str) -> ExitCode {
    eprintln!("mkimage: {why}\n{USAGE}");
    ExitCode::from(2)
}
