//! Test and benchmark host for the careledger workspace.
