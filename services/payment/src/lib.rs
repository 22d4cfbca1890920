//! nivesh-payment service library
