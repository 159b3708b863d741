//! State proofs: evidence computed from real databases, where the seal format and verification
//! meet the systems a change touches. Reserved for the engines of issue 12 (`snapshot`,
//! `snapshot-diff`, `rehearse`, for SQLite and PostgreSQL); nothing lives here yet, so that the
//! layout shows where they go and what they may depend on (the seal format, rollback evidence),
//! and what must never depend on them.
