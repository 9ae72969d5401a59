//! Image data as it travels between layers: a stream of `Bytes`, never a whole image.

use bytes::Bytes;
use futures_util::stream::{BoxStream, Stream, StreamExt};

use crate::ImageError;

/// A stream of image bytes. Errors are domain errors so that a layer that cuts the
/// stream (a quota) can say why.
pub type DataStream = BoxStream<'static, Result<Bytes, ImageError>>;

/// The body of an upload.
pub struct ImageData {
    /// The bytes, in order.
    pub stream: DataStream,
    /// The size the client announced (`x-openstack-image-size`, else `Content-Length`).
    pub expected_size: Option<u64>,
}

impl ImageData {
    pub fn new(
        stream: impl Stream<Item = Result<Bytes, ImageError>> + Send + 'static,
        expected_size: Option<u64>,
    ) -> Self {
        ImageData {
            stream: stream.boxed(),
            expected_size,
        }
    }

    /// Replaces the stream with one built from it, keeping the expected size.
    pub fn map_stream<S>(self, f: impl FnOnce(DataStream) -> S) -> Self
    where
        S: Stream<Item = Result<Bytes, ImageError>> + Send + 'static,
    {
        ImageData {
            stream: f(self.stream).boxed(),
            expected_size: self.expected_size,
        }
    }
}

impl std::fmt::Debug for ImageData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageData")
            .field("expected_size", &self.expected_size)
            .finish_non_exhaustive()
    }
}

/// One HTTP byte range, before it is resolved against the image size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `bytes=a-b` (inclusive)
    Bounded { first: u64, last: u64 },
    /// `bytes=a-`
    From(u64),
    /// `bytes=-n`: the last n bytes
    Suffix(u64),
}

impl ByteRange {
    /// The half-open range `[start, end)` this selects in an image of `size` bytes,
    /// or `RangeNotSatisfiable` when it selects nothing.
    pub fn resolve(self, size: u64) -> Result<std::ops::Range<u64>, ImageError> {
        let unsatisfiable = ImageError::RangeNotSatisfiable { size };
        match self {
            ByteRange::Bounded { first, last } if first <= last && first < size => {
                Ok(first..last.saturating_add(1).min(size))
            }
            ByteRange::From(first) if first < size => Ok(first..size),
            ByteRange::Suffix(n) if n > 0 && size > 0 => Ok(size.saturating_sub(n)..size),
            _ => Err(unsatisfiable),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_resolve_like_http() {
        assert_eq!(
            ByteRange::Bounded { first: 0, last: 9 }.resolve(100),
            Ok(0..10)
        );
        assert_eq!(
            ByteRange::Bounded {
                first: 90,
                last: 200
            }
            .resolve(100),
            Ok(90..100)
        );
        assert_eq!(ByteRange::From(10).resolve(100), Ok(10..100));
        assert_eq!(ByteRange::Suffix(5).resolve(100), Ok(95..100));
        assert_eq!(ByteRange::Suffix(500).resolve(100), Ok(0..100));
        assert!(ByteRange::From(100).resolve(100).is_err());
        assert!(
            ByteRange::Bounded { first: 5, last: 4 }
                .resolve(100)
                .is_err()
        );
        assert!(ByteRange::Suffix(0).resolve(100).is_err());
        assert!(ByteRange::Suffix(3).resolve(0).is_err());
        // The last byte a u64 can name: `last + 1` must not overflow.
        assert_eq!(
            ByteRange::Bounded {
                first: 0,
                last: u64::MAX
            }
            .resolve(100),
            Ok(0..100)
        );
    }
}
