//! nivesh-nav-ingestor service library
