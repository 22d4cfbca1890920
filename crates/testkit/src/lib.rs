//! nivesh-testkit
