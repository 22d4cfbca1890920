//! nivesh-order service library
