//! Work in progress: filled in by the next commits.
