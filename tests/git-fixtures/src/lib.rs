//! Real git repositories and loopback git servers for tests.
