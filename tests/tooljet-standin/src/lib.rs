//! A stand-in ToolJet server for tests (see shared/tooljet-contract.md).
