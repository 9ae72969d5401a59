//! What each option is called and what its doc comment says, kept beside the
//! struct field it documents.
//!
//! Doc comments cannot be read at run time, yet the sample configuration
//! (`etc/glance-api.conf.sample`) and the tolerance of unknown options both need
//! every section's option names, and the sample needs their help. Writing a
//! second table by hand would drift from the structs, so the section structs are
//! declared through [`options!`], which emits the struct unchanged and an
//! [`Documented`] impl listing each field's name, Rust type and doc lines. The
//! doc comment stays the one place an option is described.

/// One option of a section: its key, its Rust type as written, and its doc
/// comment's lines (`None` for a field attribute that is not a doc line).
#[derive(Debug)]
pub struct OptionDoc {
    pub key: &'static str,
    pub rust_type: &'static str,
    pub help: &'static [Option<&'static str>],
}

impl OptionDoc {
    /// The doc comment as one paragraph of plain text: lines joined, spaces
    /// collapsed, Markdown backticks dropped.
    pub fn help_text(&self) -> String {
        let joined: Vec<&str> = self.help.iter().flatten().copied().collect();
        joined
            .join(" ")
            .replace('`', "")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl OptionDoc {
    /// oslo.config's name for the type the option's Rust type reads.
    pub fn kind(&self) -> &'static str {
        let t: String = self.rust_type.split_whitespace().collect();
        let t = t
            .strip_prefix("Option<")
            .and_then(|t| t.strip_suffix('>'))
            .unwrap_or(&t);
        match t {
            "bool" => "boolean",
            "u8" | "u16" | "u32" | "u64" | "usize" | "i32" | "i64" => "integer",
            "f64" => "floating point",
            _ if t.starts_with("Vec<") => "list",
            _ if t.contains("BTreeMap<") => "dict",
            _ => "string",
        }
    }
}

/// A section struct whose options are listed.
pub trait Documented {
    const OPTIONS: &'static [OptionDoc];
}

/// `Some(line)` for a doc attribute's tokens, `None` for any other attribute.
macro_rules! doc_line {
    (doc = $line:literal) => {
        Some($line)
    };
    ($($other:tt)*) => {
        None
    };
}
pub(crate) use doc_line;

/// Declares a section struct (as written) and its [`Documented`] impl. Field
/// attributes are taken as token trees so doc lines can be told apart from
/// `#[serde(...)]` ones (a `meta` fragment could not be matched again).
macro_rules! options {
    (
        $(#[$($struct_attr:tt)*])*
        $struct_vis:vis struct $name:ident {
            $(
                $(#[$($field_attr:tt)*])*
                $field_vis:vis $field:ident : $ty:ty
            ),* $(,)?
        }
    ) => {
        $(#[$($struct_attr)*])*
        $struct_vis struct $name {
            $(
                $(#[$($field_attr)*])*
                $field_vis $field : $ty,
            )*
        }

        impl $crate::config::option_doc::Documented for $name {
            const OPTIONS: &'static [$crate::config::option_doc::OptionDoc] = &[
                $(
                    $crate::config::option_doc::OptionDoc {
                        key: stringify!($field),
                        rust_type: stringify!($ty),
                        help: &[$($crate::config::option_doc::doc_line!($($field_attr)*)),*],
                    },
                )*
            ];
        }
    };
}
pub(crate) use options;
