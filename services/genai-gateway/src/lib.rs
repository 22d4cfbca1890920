//! nivesh-genai-gateway service library
