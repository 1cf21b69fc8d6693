//! podctl's library: Kubernetes `v1 Pod` semantics on one host, driven over containerd's gRPC API.

pub mod containerd;
