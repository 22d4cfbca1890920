//! Boilerplate shared by the string-backed identifiers.

/// Implements `as_str`, `FromStr`, `TryFrom<String>`, `TryFrom<&str>`, `AsRef<str>`,
/// `Display` and `From<T> for String` for a `struct T(String)` that has
/// `fn parse(&str) -> Result<T>`. Not used for `Pan`, whose `Display` masks.
macro_rules! string_newtype {
    ($ty:ident) => {
        impl $ty {
            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = $crate::DomainError;
            fn from_str(s: &str) -> $crate::Result<Self> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = $crate::DomainError;
            fn try_from(s: String) -> $crate::Result<Self> {
                Self::parse(&s)
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = $crate::DomainError;
            fn try_from(s: &str) -> $crate::Result<Self> {
                Self::parse(s)
            }
        }

        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.0
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.pad(&self.0)
            }
        }
    };
}

/// Implements `FromStr`, `TryFrom<String>`, `TryFrom<&str>` and `From<T> for String` (via
/// `Display`) for a type with `fn parse(&str) -> Result<T>`; used by the decimal types so serde
/// can go through strings.
macro_rules! parse_via_str {
    ($ty:ident) => {
        impl ::std::str::FromStr for $ty {
            type Err = $crate::DomainError;
            fn from_str(s: &str) -> $crate::Result<Self> {
                Self::parse(s)
            }
        }

        impl TryFrom<String> for $ty {
            type Error = $crate::DomainError;
            fn try_from(s: String) -> $crate::Result<Self> {
                Self::parse(&s)
            }
        }

        impl TryFrom<&str> for $ty {
            type Error = $crate::DomainError;
            fn try_from(s: &str) -> $crate::Result<Self> {
                Self::parse(s)
            }
        }

        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                v.to_string()
            }
        }
    };
}
