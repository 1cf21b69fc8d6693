//! Test harness: a private containerd per test, busybox test images built at test time, the
//! leak check every test ends with, the path of the `podctl` binary under test, the fixture
//! the `podctl run` tests share, and a loopback registry (with a misbehaving proxy) for pulls.

mod daemon;
pub mod fixture;
mod images;
mod leaks;
pub mod network;
mod registry;

use std::path::PathBuf;

pub use daemon::{is_alive, mounts_under, unique_namespace, Containerd};
pub use fixture::{
    assert_success, json_status, lines_of, pod, pod_with_policy, prefixed_lines, text, wait_for,
    Background, Fixture,
};
pub use images::{busybox_image_tar, busybox_path, docker_save_tar, oci_image_tar, OciTarOptions};
pub use leaks::{assert_no_leaks, leak_check, pod_cgroup_leaks};
pub use registry::{basic_auth, http_get, HttpResponse, Proxy, Registry};

/// The `podctl` binary to drive: `$PODCTL_BIN`, else `podctl` in the target dir these tests
/// were built into (tests run from `<target>/debug/deps`).
pub fn podctl_bin() -> PathBuf {
    let path = match std::env::var_os("PODCTL_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            let exe = std::env::current_exe().expect("locating the test executable");
            let mut dir = exe
                .parent()
                .expect("the test executable has a dir")
                .to_path_buf();
            if dir.ends_with("deps") {
                dir.pop();
            }
            dir.join("podctl")
        }
    };
    assert!(
        path.is_file(),
        "podctl binary not found at {}: build it first (`cargo build -p podctl`) or set PODCTL_BIN",
        path.display()
    );
    path
}
