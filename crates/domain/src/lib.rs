//! nivesh-domain
