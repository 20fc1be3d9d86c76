//! The tables of lars's MariaDB schema, as the packaged `schema.sql` and `lars db-init` make
//! them. Plain data, so that xtask (which depends on nothing of lars) includes this file by
//! path for its package check, as the MySQL system test uses it from this crate.

/// Every table: the original's, then lars's additive ones.
pub const SCHEMA_TABLES: [&str; 9] = [
    "RouteData",
    "RouteVersion",
    "RouteChange",
    "ServerCallStatus",
    "ModIDConfig",
    "CmdIDConfig",
    "RouteAudit",
    "CallHistory",
    "HostDecision",
];
