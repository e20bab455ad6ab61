//! Harness for replicant's end-to-end tests.
