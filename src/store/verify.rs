//! The auditor's full check of a log.
