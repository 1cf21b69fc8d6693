//! `mkimage --out FILE.tar [--name NAME] [--gzip]`: writes the test image (the host's static
//! busybox as an OCI image layout tarball) for `make demo` and `make bench`, with the same code
//! the integration tests use.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut out = None;
    let mut name = "busybox".to_string();
    let mut gzip = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--out" => out = args.next().map(PathBuf::from),
            "--name" => name = args.next().unwrap_or_default(),
            "--gzip" => gzip = true,
            _ => {
                eprintln!("usage: mkimage --out FILE.tar [--name NAME] [--gzip]");
                return ExitCode::from(2);
            }
        }
    }
    let Some(out) = out else {
        eprintln!("usage: mkimage --out FILE.tar [--name NAME] [--gzip]");
        return ExitCode::from(2);
    };
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("mkimage: temp dir: {e}");
            return ExitCode::from(1);
        }
    };
    let built = podctl_integration_tests::busybox_image_tar(dir.path(), &name, gzip);
    if let Err(e) = std::fs::copy(&built, &out) {
        eprintln!("mkimage: writing {}: {e}", out.display());
        return ExitCode::from(1);
    }
    println!("{}", out.display());
    ExitCode::SUCCESS
}
