//! podctl's library: Kubernetes `v1 Pod` semantics on one host, driven over containerd's gRPC API.

pub mod containerd;
pub mod expand;
pub mod image;
pub mod lifecycle;
pub mod manifest;
pub mod oci;
pub mod reference;
pub mod sandbox;
pub mod status;
