//! nivesh-bus
