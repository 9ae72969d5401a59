//! Download: the data of an image from the first of its locations that answers,
//! heavier stores first, whole or one range.

use super::store_of;
use crate::image::Location;
use crate::store::StoreSet;
use crate::{ImageDownload, ImageError, ImageResponse};

pub(super) async fn download(
    stores: &StoreSet,
    image: crate::Image,
    range: Option<crate::ByteRange>,
) -> Result<ImageResponse, ImageError> {
    let size = match (image.size, image.locations.is_empty()) {
        (Some(size), false) => size as u64,
        _ => return Ok(ImageResponse::NoData(Box::new(image))),
    };
    let range = range.map(|r| r.resolve(size)).transpose()?;
    let mut last_error = ImageError::unavailable("No location of the image could be read.", None);
    // Heavier stores first, as Glance orders locations by store weight.
    let mut locations: Vec<&Location> = image.locations.iter().collect();
    locations
        .sort_by_key(|l| std::cmp::Reverse(store_of(l).map(|s| stores.weight(s)).unwrap_or(0)));
    for loc in locations {
        let Some(store) = stores.for_location(&loc.url, store_of(loc)) else {
            continue;
        };
        if range.is_some() && !store.capabilities().random_read {
            last_error = ImageError::Unsupported(
                "Random access is not supported by this image's store.".into(),
            );
            continue;
        }
        match store.get(&loc.url, range.clone()).await {
            Ok(data) => {
                let length = range.as_ref().map(|r| r.end - r.start).unwrap_or(size);
                return Ok(ImageResponse::Data(ImageDownload {
                    image: Box::new(image.clone()),
                    data,
                    range,
                    length,
                }));
            }
            Err(e) => {
                tracing::warn!(image = %image.id, url = %loc.url, error = %e, "location unreadable");
                last_error = e.into();
            }
        }
    }
    Err(last_error)
}
