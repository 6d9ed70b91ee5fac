//! [`needs_redaction`]: whether a value holds anything the redactor would change, found by
//! walking the value's own `Serialize` — no JSON text, no JSON tree, and it stops at the
//! first find. `redact_value` asks it before rebuilding a value through its JSON form, which
//! at each save of each rollout's state was a fifth of a controller's processor time
//! (perf, issue 16); a state with nothing to redact — nearly every one — is now only walked.
//!
//! It looks at what [`Redactor::redact_json`] looks at in the value's JSON form: every string
//! and every map key (an integer key as its digits, as serde_json writes it). Names that come
//! from the type itself — struct fields, enum variants — are not looked at: they hold no
//! secret (a secret of at least four characters that a name contains would be redacted out
//! of the name by the long way, which then mostly cannot read the value back and returns it
//! as it was — a limit of `redact_value`, docs/reliability.md).

use std::borrow::Cow;
use std::fmt::Display;

use serde::ser::{self, Serialize};

use super::Redactor;

/// Whether `redactor` would change a string or a map key of `value`'s JSON form; `None`
/// when the walk cannot tell (a type serde_json treats specially, a failing `Serialize`):
/// then `redact_value` takes the long way.
pub(super) fn needs_redaction<T: Serialize + ?Sized>(
    redactor: &Redactor,
    value: &T,
) -> Option<bool> {
    match value.serialize(Scan {
        redactor,
        key: false,
    }) {
        Ok(()) => Some(false),
        Err(Stop::Found) => Some(true),
        Err(Stop::CannotTell) => None,
    }
}

/// Why the walk stopped early.
#[derive(Debug)]
enum Stop {
    /// Something the redactor would change.
    Found,
    /// The value's `Serialize` failed, or asked for something serde_json treats specially.
    CannotTell,
}

impl Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stop::Found => "found something to redact",
            Stop::CannotTell => "cannot tell",
        })
    }
}

impl std::error::Error for Stop {}

impl ser::Error for Stop {
    fn custom<T: Display>(_: T) -> Stop {
        Stop::CannotTell
    }
}

/// The walk: `key` while serialising a map's key (whose JSON form is a string whatever its
/// type).
#[derive(Clone, Copy)]
struct Scan<'r> {
    redactor: &'r Redactor,
    key: bool,
}

impl<'r> Scan<'r> {
    fn text(self, text: &str) -> Result<(), Stop> {
        match self.redactor.redact(text) {
            Cow::Owned(_) => Err(Stop::Found),
            Cow::Borrowed(_) => Ok(()),
        }
    }

    /// A number or a boolean: only a map key's is a string in the JSON form.
    fn scalar(self, shown: impl Display) -> Result<(), Stop> {
        if self.key {
            self.text(&shown.to_string())
        } else {
            Ok(())
        }
    }

    fn value(self) -> Scan<'r> {
        Scan { key: false, ..self }
    }
}

/// Numbers and booleans: looked at only as a map's key ([`Scan::scalar`]).
macro_rules! walk_scalars {
    ($($method:ident: $kind:ty),* $(,)?) => {$(
        fn $method(self, v: $kind) -> Result<(), Stop> {
            self.scalar(v)
        }
    )*};
}

impl<'r> ser::Serializer for Scan<'r> {
    type Ok = ();
    type Error = Stop;
    type SerializeSeq = Scan<'r>;
    type SerializeTuple = Scan<'r>;
    type SerializeTupleStruct = Scan<'r>;
    type SerializeTupleVariant = Scan<'r>;
    type SerializeMap = Scan<'r>;
    type SerializeStruct = Scan<'r>;
    type SerializeStructVariant = Scan<'r>;

    walk_scalars!(
        serialize_bool: bool,
        serialize_i8: i8,
        serialize_i16: i16,
        serialize_i32: i32,
        serialize_i64: i64,
        serialize_i128: i128,
        serialize_u8: u8,
        serialize_u16: u16,
        serialize_u32: u32,
        serialize_u64: u64,
        serialize_u128: u128,
        serialize_f32: f32,
        serialize_f64: f64,
    );

    fn serialize_char(self, v: char) -> Result<(), Stop> {
        self.text(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), Stop> {
        self.text(v)
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), Stop> {
        // A list of numbers in the JSON form.
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Stop> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Stop> {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<(), Stop> {
        special(name)?;
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), Stop> {
        value.serialize(self.value())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Scan<'r>, Stop> {
        Ok(self.value())
    }
    fn serialize_tuple(self, _: usize) -> Result<Scan<'r>, Stop> {
        Ok(self.value())
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Scan<'r>, Stop> {
        Ok(self.value())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Scan<'r>, Stop> {
        Ok(self.value())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Scan<'r>, Stop> {
        Ok(self.value())
    }
    fn serialize_struct(self, name: &'static str, _: usize) -> Result<Scan<'r>, Stop> {
        special(name)?;
        Ok(self.value())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Scan<'r>, Stop> {
        Ok(self.value())
    }
}

/// serde_json's own types (a `RawValue`, an arbitrary-precision number) serialise as structs
/// whose JSON form is not what they serialise: the walk cannot tell.
fn special(name: &str) -> Result<(), Stop> {
    if name.starts_with("$serde_json::") {
        Err(Stop::CannotTell)
    } else {
        Ok(())
    }
}

/// The walk's compound parts: each element's or field's value is walked as a value.
macro_rules! walk_each_value {
    ($($part:ident :: $method:ident ($($name:ty)?)),* $(,)?) => {$(
        impl ser::$part for Scan<'_> {
            type Ok = ();
            type Error = Stop;
            fn $method<T: Serialize + ?Sized>(
                &mut self,
                $(_: $name,)?
                value: &T,
            ) -> Result<(), Stop> {
                value.serialize(self.value())
            }
            fn end(self) -> Result<(), Stop> {
                Ok(())
            }
        }
    )*};
}

walk_each_value!(
    SerializeSeq::serialize_element(),
    SerializeTuple::serialize_element(),
    SerializeTupleStruct::serialize_field(),
    SerializeTupleVariant::serialize_field(),
    SerializeStruct::serialize_field(&'static str),
    SerializeStructVariant::serialize_field(&'static str),
);

impl ser::SerializeMap for Scan<'_> {
    type Ok = ();
    type Error = Stop;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Stop> {
        key.serialize(Scan { key: true, ..*self })
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Stop> {
        value.serialize(self.value())
    }
    fn end(self) -> Result<(), Stop> {
        Ok(())
    }
}
