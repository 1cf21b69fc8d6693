//! podctl's own gRPC API, generated from `proto/podctl.proto` at build time.

#![allow(clippy::derive_partial_eq_without_eq)]

/// Version 1 of the API (`podctl.v1`).
pub mod v1 {
    tonic::include_proto!("podctl.v1");
}
