//! Closed sets of states stored as text (`pending`, `active`, …): [`text_enum!`] declares the
//! enum once with each variant's text, and gives it `as_str`, `Display`, `FromStr` and the
//! sqlx encoding as PostgreSQL `text`, so rows decode into the enum and a value the code does
//! not know is a decode error rather than a string that matches nothing.

/// Declares a text-backed enum:
///
/// ```
/// platform::text_enum! {
///     /// A door.
///     pub enum Door { Open = "open", Shut = "shut" }
/// }
/// assert_eq!(Door::Open.as_str(), "open");
/// assert_eq!("shut".parse::<Door>(), Ok(Door::Shut));
/// ```
#[macro_export]
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The stored text.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = ::std::string::String;

            fn from_str(s: &str) -> ::std::result::Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => Err(format!(
                        "{other:?} is not a {} ({})",
                        stringify!($name),
                        [$($text),+].join(", ")
                    )),
                }
            }
        }

        impl $crate::__private::sqlx::Type<$crate::__private::sqlx::Postgres> for $name {
            fn type_info() -> $crate::__private::sqlx::postgres::PgTypeInfo {
                <&str as $crate::__private::sqlx::Type<$crate::__private::sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &$crate::__private::sqlx::postgres::PgTypeInfo) -> bool {
                <&str as $crate::__private::sqlx::Type<$crate::__private::sqlx::Postgres>>::compatible(ty)
            }
        }

        impl $crate::__private::sqlx::Encode<'_, $crate::__private::sqlx::Postgres> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut $crate::__private::sqlx::postgres::PgArgumentBuffer,
            ) -> ::std::result::Result<$crate::__private::sqlx::encode::IsNull, $crate::__private::sqlx::error::BoxDynError> {
                <&str as $crate::__private::sqlx::Encode<$crate::__private::sqlx::Postgres>>::encode(self.as_str(), buf)
            }
        }

        impl $crate::__private::sqlx::Decode<'_, $crate::__private::sqlx::Postgres> for $name {
            fn decode(
                value: $crate::__private::sqlx::postgres::PgValueRef<'_>,
            ) -> ::std::result::Result<Self, $crate::__private::sqlx::error::BoxDynError> {
                Ok(<&str as $crate::__private::sqlx::Decode<$crate::__private::sqlx::Postgres>>::decode(value)?.parse()?)
            }
        }
    };
}
