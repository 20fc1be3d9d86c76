//! lars-tests: integration tests that start real lars daemons on loopback against the route file
//! and against MariaDB. The tests live in `tests/`; this library will hold their shared harness.
