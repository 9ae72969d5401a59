//! `PATCH` of `/locations` (Glance's deprecated `show_multiple_locations`): add a
//! location at a position, replace the list, remove one. Every new location is
//! checked against the stores (one must own it, and say it holds data), the
//! changes are worked out on a copy of the image, and the result is saved at
//! once, after the request's other changes; the data of a removed location goes
//! after the save, as Glance removes it from the store.
//!
//! Glance's rules and texts: `glance/api/v2/images.py` (`_do_*_locations`,
//! `_validate_validation_data`), `glance/location.py` (`StoreLocations`) and the
//! location quota of `glance/quota`.

use serde_json::Value;

use super::{LocationOptions, Locations, store_of};
use crate::image::Location;
use crate::middleware::Next;
use crate::patch::{Change, PatchOp};
use crate::{
    Image, ImageError, ImageRequest, ImageResponse, ImageService, ImageStatus, Operation,
    RequestContext,
};

/// Applies `changes`, of which some touch `/locations`.
pub(super) async fn update<S: ImageService>(
    layer: &Locations,
    next: Next<S>,
    ctx: RequestContext,
    id: String,
    changes: Vec<Change>,
) -> Result<ImageResponse, ImageError> {
    let loaded = ctx.loaded.clone();
    let (located, others): (Vec<Change>, Vec<Change>) =
        changes.into_iter().partition(|c| c.key == "locations");
    let image = next
        .clone()
        .run(ImageRequest::new(
            ctx.clone(),
            Operation::Get { id: id.clone() },
        ))
        .await?
        .into_image()?;
    let mut plan = Plan {
        image: image.clone(),
        removed: Vec::new(),
    };
    for change in &located {
        match change.op {
            PatchOp::Add => plan.add(layer, change).await?,
            PatchOp::Replace => plan.replace(layer, change).await?,
            PatchOp::Remove => plan.remove(change)?,
        }
    }
    // The other changes first (they may still fail, and nothing is saved yet),
    // then the locations over what they saved.
    let before = if others.is_empty() {
        image
    } else {
        next.run(ImageRequest::new(
            ctx,
            Operation::Update {
                id: id.clone(),
                changes: others,
            },
        ))
        .await?
        .into_image()?
    };
    let mut after = before.clone();
    after.locations = plan.image.locations;
    after.status = plan.image.status;
    after.size = plan.image.size;
    after.checksum = plan.image.checksum;
    after.os_hash_algo = plan.image.os_hash_algo;
    after.os_hash_value = plan.image.os_hash_value;
    let saved = layer.records.save_locations(&before, &after).await?;
    loaded.replace(saved.clone());
    for loc in plan.removed {
        if let Some(store) = layer.stores.for_location(&loc.url, store_of(&loc))
            && store.capabilities().write
            && let Err(e) = store.delete(&loc.url).await
        {
            tracing::warn!(image = %id, url = %loc.url, error = %e, "could not delete a removed location's data");
        }
    }
    Ok(ImageResponse::image(saved))
}

/// The image as the changes so far leave it.
struct Plan {
    image: Image,
    removed: Vec<Location>,
}

impl Plan {
    async fn add(&mut self, layer: &Locations, change: &Change) -> Result<(), ImageError> {
        let status = self.image.status;
        if !matches!(status, ImageStatus::Active | ImageStatus::Queued) {
            return Err(ImageError::Conflict(format!(
                "It's not allowed to add locations if image status is {}.",
                status.as_str()
            )));
        }
        let value = change.value.clone().unwrap_or(Value::Null);
        let hashes = validation_data(&self.image, std::slice::from_ref(&value), layer)?;
        let count = self.image.locations.len();
        let pos = position(change.position.as_deref(), count, true)
            .ok_or_else(|| ImageError::Invalid("Invalid position for adding a location.".into()))?;
        check_quota(&layer.options, count + 1)?;
        let (location, size) = layer.checked_location(&value).await?;
        if self.image.locations.contains(&location) {
            return Err(duplicate(&location));
        }
        self.image.locations.insert(pos, location);
        self.settle(size, hashes);
        Ok(())
    }

    async fn replace(&mut self, layer: &Locations, change: &Change) -> Result<(), ImageError> {
        let items = change
            .value
            .as_ref()
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if items.is_empty() {
            return Err(ImageError::Forbidden(
                "Cannot set locations to empty list.".into(),
            ));
        }
        let status = self.image.status;
        if !matches!(status, ImageStatus::Active | ImageStatus::Queued) {
            return Err(ImageError::Conflict(format!(
                "It's not allowed to replace locations if image status is {}.",
                status.as_str()
            )));
        }
        let hashes = validation_data(&self.image, &items, layer)?;
        check_quota(&layer.options, items.len())?;
        let urls = |locs: &mut dyn Iterator<Item = String>| {
            let mut v: Vec<String> = locs.collect();
            v.sort();
            v
        };
        let new_urls = urls(&mut items.iter().filter_map(|i| url_of(i).map(str::to_string)));
        let old_urls = urls(&mut self.image.locations.iter().map(|l| l.url.clone()));
        let mut locations = Vec::with_capacity(items.len());
        let mut size = None;
        if new_urls == old_urls {
            // The same URLs: only their metadata changes, nothing to check again.
            for item in &items {
                locations.push(plain_location(item));
            }
        } else {
            if !self.image.locations.is_empty() {
                return Err(ImageError::Invalid(format!(
                    "Original locations is not empty: {}",
                    python_list(&self.image.locations)
                )));
            }
            for item in &items {
                let (location, bytes) = layer.checked_location(item).await?;
                if locations.contains(&location) {
                    return Err(duplicate(&location));
                }
                size = size.or(Some(bytes));
                locations.push(location);
            }
        }
        self.image.locations = locations;
        if let Some(size) = size {
            self.settle(size, hashes);
        } else if self.image.status == ImageStatus::Queued {
            self.apply_hashes(hashes);
            self.image.status = ImageStatus::Active;
        }
        Ok(())
    }

    fn remove(&mut self, change: &Change) -> Result<(), ImageError> {
        let status = self.image.status;
        if status != ImageStatus::Active {
            return Err(ImageError::Conflict(format!(
                "It's not allowed to remove locations if image status is {}.",
                status.as_str()
            )));
        }
        let count = self.image.locations.len();
        if count == 1 {
            return Err(ImageError::Forbidden(
                "Cannot remove last location in the image.".into(),
            ));
        }
        let pos = position(change.position.as_deref(), count, false).ok_or_else(|| {
            ImageError::Invalid("Invalid position for removing a location.".into())
        })?;
        self.removed.push(self.image.locations.remove(pos));
        Ok(())
    }

    /// A location was added that holds `size` bytes: an image without a size
    /// takes it, and a `queued` one becomes `active` with the validation data.
    fn settle(&mut self, size: u64, hashes: Hashes) {
        if self.image.size.is_none_or(|s| s == 0) {
            self.image.size = Some(size as i64);
        }
        if self.image.status == ImageStatus::Queued {
            self.apply_hashes(hashes);
            self.image.status = ImageStatus::Active;
        }
    }

    fn apply_hashes(&mut self, hashes: Hashes) {
        if let Some(v) = hashes.checksum {
            self.image.checksum = Some(v);
        }
        if let Some(v) = hashes.os_hash_algo {
            self.image.os_hash_algo = Some(v);
        }
        if let Some(v) = hashes.os_hash_value {
            self.image.os_hash_value = Some(v);
        }
    }
}

impl Locations {
    /// A location a client gave, checked (see [`super::check_new_location`]).
    async fn checked_location(&self, item: &Value) -> Result<(Location, u64), ImageError> {
        let checked =
            super::check_new_location(&self.stores, self.options.multistore, plain_location(item))
                .await?;
        Ok((checked.location, checked.size))
    }
}

fn url_of(item: &Value) -> Option<&str> {
    item.get("url").and_then(Value::as_str)
}

/// `{"url", "metadata"}` of an item the API already checked against the schema.
fn plain_location(item: &Value) -> Location {
    Location {
        url: url_of(item).unwrap_or_default().to_string(),
        metadata: item
            .get("metadata")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
    }
}

fn duplicate(location: &Location) -> ImageError {
    ImageError::Invalid(format!("The location {} already exists", location.url))
}

fn check_quota(options: &LocationOptions, attempted: usize) -> Result<(), ImageError> {
    if options.quota >= 0 && attempted as i64 > options.quota {
        return Err(ImageError::QuotaExceeded {
            resource: "image_location_quota".into(),
            message: format!(
                "The limit has been exceeded on the number of allowed image locations. Attempted: {attempted}, Maximum: {}",
                options.quota
            ),
        });
    }
    Ok(())
}

/// Glance's `_get_locations_op_pos`: a digit string, or `-` for the end.
fn position(path: Option<&str>, count: usize, allow_end: bool) -> Option<usize> {
    let path = path?;
    let pos = if !path.is_empty() && path.bytes().all(|b| b.is_ascii_digit()) {
        path.parse().ok()?
    } else if path == "-" {
        if allow_end {
            count
        } else {
            count.checked_sub(1)?
        }
    } else {
        return None;
    };
    match allow_end {
        true if pos <= count => Some(pos),
        // Glance inserts past the end at the end.
        true => Some(count),
        false if pos < count => Some(pos),
        false => None,
    }
}

/// What `validation_data` sets on a `queued` image.
#[derive(Default)]
struct Hashes {
    checksum: Option<String>,
    os_hash_algo: Option<String>,
    os_hash_value: Option<String>,
}

/// Glance's `_validate_validation_data`: values must agree with each other and
/// with what the image has; new ones only for a `queued` image, with the
/// configured algorithm, in hex of the right length.
fn validation_data(
    image: &Image,
    items: &[Value],
    layer: &Locations,
) -> Result<Hashes, ImageError> {
    let conflict = |m: String| Err(ImageError::Conflict(m));
    let mut given: Vec<(String, String)> = Vec::new();
    for item in items {
        let Some(data) = item.get("validation_data").and_then(Value::as_object) else {
            continue;
        };
        for (k, v) in data {
            let v = v.as_str().unwrap_or_default().to_string();
            match given.iter().find(|(gk, _)| gk == k) {
                Some((_, gv)) if *gv != v => {
                    return conflict(format!("Conflicting values for {k}"));
                }
                Some(_) => {}
                None => given.push((k.clone(), v)),
            }
        }
    }
    let mut new = Hashes::default();
    let mut names = Vec::new();
    for (k, v) in given {
        let current = match k.as_str() {
            "checksum" => &image.checksum,
            "os_hash_algo" => &image.os_hash_algo,
            "os_hash_value" => &image.os_hash_value,
            _ => continue,
        };
        if current.as_deref() == Some(v.as_str()) {
            continue;
        }
        if current.as_deref().is_some_and(|c| !c.is_empty()) {
            return conflict(format!("{k} is already set with a different value"));
        }
        names.push(k.clone());
        match k.as_str() {
            "checksum" => new.checksum = Some(v),
            "os_hash_algo" => new.os_hash_algo = Some(v),
            _ => new.os_hash_value = Some(v),
        }
    }
    if names.is_empty() {
        return Ok(new);
    }
    if image.status != ImageStatus::Queued {
        return conflict(format!(
            "New value(s) for {} may only be provided when image status is 'queued'",
            names.join(", ")
        ));
    }
    if let Some(checksum) = &new.checksum {
        if hex::decode(checksum).is_err() {
            return conflict(format!(
                "checksum ({checksum}) is not a valid hexadecimal value"
            ));
        }
        if checksum.len() != 32 {
            return conflict(format!(
                "checksum ({checksum}) is not the correct size for md5 (should be 16 bytes)"
            ));
        }
    }
    let want = layer.algo.name();
    let algo = new.os_hash_algo.as_deref().unwrap_or("None");
    if algo != want {
        return conflict(format!("os_hash_algo must be {want}, not {algo}"));
    }
    let value = new.os_hash_value.as_deref().unwrap_or_default();
    if hex::decode(value).is_err() {
        return conflict(format!(
            "os_hash_value ({value}) is not a valid hexadecimal value"
        ));
    }
    let want_bytes = layer.algo.digest_len();
    if value.len() != want_bytes * 2 {
        return conflict(format!(
            "os_hash_value ({value}) is not the correct size for {want} (should be {want_bytes} bytes)"
        ));
    }
    Ok(new)
}

/// Locations as Python prints a list of dicts, for Glance's message.
fn python_list(locations: &[Location]) -> String {
    let items: Vec<String> = locations
        .iter()
        .map(|l| {
            let meta: Vec<String> = l
                .metadata
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => format!("'{k}': '{s}'"),
                    v => format!("'{k}': {v}"),
                })
                .collect();
            format!(
                "{{'url': '{}', 'metadata': {{{}}}, 'status': 'active'}}",
                l.url,
                meta.join(", ")
            )
        })
        .collect();
    format!("[{}]", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::position;

    #[test]
    fn positions_follow_glance() {
        assert_eq!(position(Some("-"), 2, true), Some(2));
        assert_eq!(position(Some("0"), 2, true), Some(0));
        assert_eq!(position(Some("7"), 2, true), Some(2));
        assert_eq!(position(Some("x"), 2, true), None);
        assert_eq!(position(Some("-"), 2, false), Some(1));
        assert_eq!(position(Some("1"), 2, false), Some(1));
        assert_eq!(position(Some("2"), 2, false), None);
        assert_eq!(position(None, 2, true), None);
    }
}
