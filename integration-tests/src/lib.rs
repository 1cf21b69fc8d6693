//! Test harness: a private containerd and a busybox test image.
