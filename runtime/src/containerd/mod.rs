//! The only module that speaks containerd's gRPC API.
//!
//! [`Client`] wraps one channel plus the containerd namespace, sets the `containerd-namespace`
//! (and, where asked, `containerd-lease`) metadata in one place, and classifies every
//! `tonic::Status` once into [`ContainerdError`], so code above matches variants, never strings.
//! Only the core services that containerd 1.6 implements are used.

mod client;
mod error;

pub use client::{BlobInfo, Client, ContainerSpec, Lease, TaskExit, TaskIo, TaskStatus};
pub use containerd_client::services::v1::snapshots::Info as SnapshotInfo;
pub use containerd_client::services::v1::Container;
pub use containerd_client::services::v1::Image;
pub use containerd_client::types::{Descriptor, Mount};
pub use error::ContainerdError;

/// The signal that cannot be caught: what `Tasks.Kill` sends to end a process for certain.
pub const SIGKILL: u32 = 9;

/// Labels podctl puts on containerd objects, and the gc labels containerd itself reads.
pub mod labels {
    /// Pod a container belongs to.
    pub const POD: &str = "io.podctl.pod";
    /// Name of the container inside its pod.
    pub const CONTAINER: &str = "io.podctl.container";
    /// `init`, `sidecar` or `main`.
    pub const ROLE: &str = "io.podctl.role";
    /// Keeps an object from gc while it is referenced only by a lease that might expire.
    pub const GC_EXPIRE: &str = "containerd.io/gc.expire";
    /// Prefix of the labels that make content reference other content.
    pub const GC_REF_CONTENT: &str = "containerd.io/gc.ref.content";
    /// Prefix of the label that makes content reference a snapshot (`.<snapshotter>` follows).
    pub const GC_REF_SNAPSHOT: &str = "containerd.io/gc.ref.snapshot";
    /// Uncompressed digest of a layer blob.
    pub const UNCOMPRESSED: &str = "containerd.io/uncompressed";
}
