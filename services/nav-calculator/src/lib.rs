//! nivesh-nav-calculator service library
