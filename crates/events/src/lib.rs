//! nivesh-events
