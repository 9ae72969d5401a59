//! The image record and its member rows, as the domain sees them.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name { $(#[serde(rename = $text)] $variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = ();
            fn from_str(s: &str) -> Result<Self, ()> {
                match s { $($text => Ok($name::$variant),)+ _ => Err(()) }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum! {
    /// Glance's image statuses (`glance/domain/__init__.py`).
    ImageStatus {
        Queued = "queued",
        Saving = "saving",
        Active = "active",
        Killed = "killed",
        Deleted = "deleted",
        PendingDelete = "pending_delete",
        Deactivated = "deactivated",
        Uploading = "uploading",
        Importing = "importing",
    }
}

string_enum! {
    Visibility {
        Public = "public",
        Community = "community",
        Shared = "shared",
        Private = "private",
    }
}

string_enum! {
    MemberStatus {
        Pending = "pending",
        Accepted = "accepted",
        Rejected = "rejected",
    }
}

impl ImageStatus {
    /// Whether Glance's state machine allows `self → to`.
    pub fn can_become(self, to: ImageStatus) -> bool {
        use ImageStatus::*;
        matches!(
            (self, to),
            (Queued, Saving | Uploading | Importing | Active | Deleted)
                | (Saving, Active | Killed | Deleted | Queued)
                | (Uploading, Importing | Queued | Deleted)
                | (Importing, Active | Deleted | Queued)
                | (Active, PendingDelete | Deleted | Deactivated)
                | (Killed, Deleted)
                | (PendingDelete, Deleted | Active)
                | (Deactivated, Active | Deleted)
        )
    }
}

/// Where an image's data lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub url: String,
    /// Free-form; `store` names the backend that holds it.
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// An image record with its extra properties, tags and locations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub id: String,
    pub name: Option<String>,
    pub status: ImageStatus,
    pub visibility: Visibility,
    pub protected: bool,
    pub os_hidden: bool,
    pub checksum: Option<String>,
    pub os_hash_algo: Option<String>,
    pub os_hash_value: Option<String>,
    pub min_disk: i64,
    pub min_ram: i64,
    pub size: Option<i64>,
    pub virtual_size: Option<i64>,
    pub container_format: Option<String>,
    pub disk_format: Option<String>,
    pub owner: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub tags: BTreeSet<String>,
    /// Extra (custom) properties; values are always strings.
    pub properties: BTreeMap<String, String>,
    pub locations: Vec<Location>,
}

impl Image {
    /// A fresh `queued` image with every base attribute at Glance's default.
    pub fn new(id: String, now: DateTime<Utc>) -> Self {
        Image {
            id,
            name: None,
            status: ImageStatus::Queued,
            visibility: Visibility::Shared,
            protected: false,
            os_hidden: false,
            checksum: None,
            os_hash_algo: None,
            os_hash_value: None,
            min_disk: 0,
            min_ram: 0,
            size: None,
            virtual_size: None,
            container_format: None,
            disk_format: None,
            owner: None,
            created_at: now,
            updated_at: now,
            deleted_at: None,
            tags: BTreeSet::new(),
            properties: BTreeMap::new(),
            locations: Vec::new(),
        }
    }
}

/// One project's membership of a shared image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub image_id: String,
    pub member_id: String,
    pub status: MemberStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_machine_matches_glance() {
        use ImageStatus::*;
        assert!(Queued.can_become(Saving));
        assert!(Saving.can_become(Queued));
        assert!(Active.can_become(Deactivated));
        assert!(!Active.can_become(Queued));
        assert!(!Deleted.can_become(Active));
        assert!(!Killed.can_become(Active));
    }

    #[test]
    fn enums_round_trip_their_wire_names() {
        for s in ImageStatus::ALL {
            assert_eq!(s.as_str().parse::<ImageStatus>(), Ok(*s));
        }
        assert_eq!("pending_delete".parse(), Ok(ImageStatus::PendingDelete));
        assert!("Active".parse::<ImageStatus>().is_err());
    }
}
