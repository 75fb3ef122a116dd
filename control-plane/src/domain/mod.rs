//! The control plane's vocabulary as types: task kinds, payloads and states, cluster and demo states, deploy
//! steps, and the rules names must follow. Everything the store reads is parsed into these, so a value outside
//! them is an error at the boundary instead of a string compared somewhere else. No I/O lives here.

/// Declares a closed set of values stored and sent as text: the enum, its text (one literal per variant is the
/// only spelling anywhere), `Display`/`FromStr`, serde as a string, its OpenAPI schema (a string of those
/// values), and PostgreSQL text encoding that refuses a stored value outside the set.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($what:literal) {
            $($(#[$variant_meta:meta])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name {
            $($(#[$variant_meta])* $variant,)+
        }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::domain::UnknownValue;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|known| known.as_str() == value)
                    .ok_or_else(|| $crate::domain::UnknownValue::new($what, value, Self::ALL.iter().map(|v| v.as_str())))
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <::std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(::serde::de::Error::custom)
            }
        }

        impl ::utoipa::PartialSchema for $name {
            fn schema() -> ::utoipa::openapi::RefOr<::utoipa::openapi::schema::Schema> {
                ::utoipa::openapi::ObjectBuilder::new()
                    .schema_type(::utoipa::openapi::schema::Type::String)
                    .enum_values(Some(Self::ALL.iter().map(|v| v.as_str())))
                    .into()
            }
        }

        impl ::utoipa::ToSchema for $name {}

        impl ::sqlx::Type<::sqlx::Postgres> for $name {
            fn type_info() -> ::sqlx::postgres::PgTypeInfo {
                <str as ::sqlx::Type<::sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &::sqlx::postgres::PgTypeInfo) -> bool {
                <str as ::sqlx::Type<::sqlx::Postgres>>::compatible(ty)
            }
        }

        impl ::sqlx::postgres::PgHasArrayType for $name {
            fn array_type_info() -> ::sqlx::postgres::PgTypeInfo {
                <&str as ::sqlx::postgres::PgHasArrayType>::array_type_info()
            }
        }

        impl<'q> ::sqlx::Encode<'q, ::sqlx::Postgres> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut ::sqlx::postgres::PgArgumentBuffer,
            ) -> Result<::sqlx::encode::IsNull, ::sqlx::error::BoxDynError> {
                <&str as ::sqlx::Encode<'q, ::sqlx::Postgres>>::encode(self.as_str(), buf)
            }
        }

        impl<'r> ::sqlx::Decode<'r, ::sqlx::Postgres> for $name {
            fn decode(value: ::sqlx::postgres::PgValueRef<'r>) -> Result<Self, ::sqlx::error::BoxDynError> {
                Ok(<&str as ::sqlx::Decode<'r, ::sqlx::Postgres>>::decode(value)?.parse()?)
            }
        }
    };
}

pub mod cluster;
pub mod demo;
pub mod names;
pub mod region;
pub mod task;
pub mod taskspec;

pub use cluster::{
    ClusterRole, ClusterStatus, DriftStatus, LogSelection, NamespaceName, Provisioning,
};
pub use demo::{DemoConfig, DemoEnd, DemoStatus, RequestedRegion, StepName, StepState};
pub use region::RegionHealth;
pub use task::{ObjectOutcome, TaskKind, TaskState};

/// A text that is none of a type's values; names the type and what it accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a {what} (expected one of: {expected})")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
    pub expected: String,
}

impl UnknownValue {
    fn new<'a>(what: &'static str, value: &str, expected: impl Iterator<Item = &'a str>) -> Self {
        Self {
            what,
            // The value may be user input headed for a log line or an error body: keep it short.
            value: value.chars().take(64).collect(),
            expected: expected.collect::<Vec<_>>().join(", "),
        }
    }
}

/// A state change a type's rules do not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {what} cannot go from {from} to {to}")]
pub struct InvalidTransition {
    pub what: &'static str,
    pub from: &'static str,
    pub to: &'static str,
}
