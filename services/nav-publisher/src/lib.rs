//! nivesh-nav-publisher service library
