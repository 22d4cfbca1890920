//! nivesh-notification service library
