//! nivesh-portfolio service library
