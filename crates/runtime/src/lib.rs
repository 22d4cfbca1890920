//! nivesh-runtime
