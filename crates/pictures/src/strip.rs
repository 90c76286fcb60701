//! Location, device and other metadata removed from a JPEG, PNG or WebP without touching its
//! image data: the compressed pixels are copied byte for byte, so the stored file decodes to
//! exactly the original's pixels.
//!
//! What stays: the colour profile (ICC), and the EXIF orientation as a minimal EXIF block that
//! holds that one tag, so that the picture shows the way the original did. What goes: the rest
//! of EXIF (GPS position, camera serial, times, thumbnails), XMP, IPTC, comments, PNG text
//! chunks, and the secondary images a phone appends after the primary JPEG (an MPF depth map
//! or gain map carries its own EXIF, GPS included).

use bytes::Bytes;
use img_parts::jpeg::{markers, Jpeg};
use img_parts::png::Png;
use img_parts::webp::WebP;
use img_parts::ImageEXIF;

/// A picture with its metadata removed.
#[derive(Debug)]
pub struct Stripped {
    /// The file as it is kept.
    pub bytes: Bytes,
    /// What was removed, in words for people and tools: `gps`, `exif`, `xmp`, `iptc`,
    /// `comment`, `text`, `secondary-images`. Empty when there was nothing to remove.
    pub removed: Vec<&'static str>,
}

/// Whether [`strip`] knows the stored type, so that a caller reads the file only for these.
pub fn strips(content_type: &str) -> bool {
    matches!(content_type, "image/jpeg" | "image/png" | "image/webp")
}

/// `data` with its metadata removed, for the stored types this knows (`image/jpeg`,
/// `image/png`, `image/webp`); `None` for any other type, and for bytes that do not parse as
/// the type they claim, which are kept as they came.
pub fn strip(data: Bytes, content_type: &str) -> Option<Stripped> {
    match content_type {
        "image/jpeg" => strip_jpeg(data),
        "image/png" => strip_png(data),
        "image/webp" => strip_webp(data),
        _ => None,
    }
}

/// The words for what an EXIF block held beyond its orientation, and the block to keep.
fn exif_parts(exif: &[u8], removed: &mut Vec<&'static str>) -> Option<Bytes> {
    let parsed = exif::Reader::new().read_raw(exif.to_vec()).ok();
    let orientation = parsed
        .as_ref()
        .and_then(|e| e.get_field(exif::Tag::Orientation, exif::In::PRIMARY))
        .and_then(|f| f.value.get_uint(0))
        .and_then(|o| u16::try_from(o).ok())
        .filter(|o| (1..=8).contains(o));
    let gps = parsed.as_ref().is_some_and(|e| {
        e.fields()
            .any(|f| f.tag == exif::Tag::GPSInfoIFDPointer || f.tag.context() == exif::Context::Gps)
    });
    if gps {
        removed.push("gps");
    }
    let beyond_orientation = parsed.as_ref().is_none_or(|e| {
        e.fields()
            .any(|f| f.tag != exif::Tag::Orientation || f.ifd_num != exif::In::PRIMARY)
    });
    if beyond_orientation {
        removed.push("exif");
    }
    orientation.filter(|&o| o != 1).map(orientation_only)
}

/// An EXIF block (TIFF structure, big-endian) that holds only the Orientation tag.
fn orientation_only(orientation: u16) -> Bytes {
    let mut b = Vec::with_capacity(26);
    b.extend_from_slice(b"MM\0*");
    b.extend_from_slice(&8u32.to_be_bytes()); // the first IFD
    b.extend_from_slice(&1u16.to_be_bytes()); // one entry
    b.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    b.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    b.extend_from_slice(&1u32.to_be_bytes()); // one value
    b.extend_from_slice(&orientation.to_be_bytes());
    b.extend_from_slice(&[0, 0]); // the value's padding
    b.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    Bytes::from(b)
}

fn strip_jpeg(data: Bytes) -> Option<Stripped> {
    // The secondary images follow the primary one's end: the file is cut there.
    let end = primary_len(&data)?;
    let mut mpf = end < data.len();
    let mut jpeg = Jpeg::from_bytes(data.slice(..end)).ok()?;
    let mut removed = Vec::new();
    let kept_exif = jpeg.exif().and_then(|exif| exif_parts(&exif, &mut removed));
    let mut xmp = false;
    let mut iptc = false;
    let mut comment = false;
    jpeg.segments_mut().retain(|s| {
        let c = s.contents();
        let drop = match s.marker() {
            markers::APP1 if c.starts_with(b"http://ns.adobe.com/") => {
                xmp = true;
                true
            }
            markers::APP13 => {
                iptc = true;
                true
            }
            markers::COM => {
                comment = true;
                true
            }
            markers::APP2 if c.starts_with(b"MPF\0") => {
                mpf = true;
                true
            }
            _ => false,
        };
        !drop
    });
    jpeg.set_exif(kept_exif);
    for (found, word) in [
        (xmp, "xmp"),
        (iptc, "iptc"),
        (comment, "comment"),
        (mpf, "secondary-images"),
    ] {
        if found {
            removed.push(word);
        }
    }
    Some(Stripped {
        bytes: jpeg.encoder().bytes(),
        removed,
    })
}

/// The length of a JPEG's primary image: up to and including its end marker (`FF D9`), where
/// the secondary images of a phone photo begin. Segments are stepped over by their lengths and
/// entropy-coded data is read for markers only, so no byte inside a segment (an EXIF block, a
/// table) is ever taken for the end. `None` for a file that does not start as a JPEG or ends
/// before its end marker.
fn primary_len(b: &[u8]) -> Option<usize> {
    if !b.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut i = 2;
    while i + 1 < b.len() {
        if b[i] != 0xFF {
            // Entropy-coded data.
            i += 1;
            continue;
        }
        match b[i + 1] {
            0xFF => i += 1,
            // A stuffed zero, a restart marker, TEM: no length follows.
            0x00 | 0x01 | 0xD0..=0xD7 => i += 2,
            0xD9 => return Some(i + 2),
            _ => {
                let len = usize::from(u16::from_be_bytes([*b.get(i + 2)?, *b.get(i + 3)?]));
                i += 2 + len;
            }
        }
    }
    None
}

fn strip_png(data: Bytes) -> Option<Stripped> {
    let mut png = Png::from_bytes(data).ok()?;
    let mut removed = Vec::new();
    let kept_exif = png.exif().and_then(|exif| exif_parts(&exif, &mut removed));
    let mut xmp = false;
    let mut text = false;
    png.chunks_mut().retain(|c| match &c.kind() {
        b"iTXt" if c.contents().starts_with(b"XML:com.adobe.xmp\0") => {
            xmp = true;
            false
        }
        b"tEXt" | b"zTXt" | b"iTXt" | b"tIME" => {
            text = true;
            false
        }
        _ => true,
    });
    png.set_exif(kept_exif);
    if xmp {
        removed.push("xmp");
    }
    if text {
        removed.push("text");
    }
    Some(Stripped {
        bytes: png.encoder().bytes(),
        removed,
    })
}

fn strip_webp(data: Bytes) -> Option<Stripped> {
    let mut webp = WebP::from_bytes(data).ok()?;
    let mut removed = Vec::new();
    let kept_exif = webp.exif().and_then(|exif| exif_parts(&exif, &mut removed));
    if webp.has_chunk(*b"XMP ") {
        webp.remove_chunks_by_id(*b"XMP ");
        removed.push("xmp");
    }
    webp.set_exif(kept_exif);
    Some(Stripped {
        bytes: webp.encoder().bytes(),
        removed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_orientation_block_reads_back() {
        let block = orientation_only(6);
        assert_eq!(
            image::metadata::Orientation::from_exif_chunk(&block),
            Some(image::metadata::Orientation::Rotate90)
        );
        let mut removed = Vec::new();
        assert_eq!(exif_parts(&block, &mut removed), Some(block.clone()));
        assert!(removed.is_empty(), "{removed:?}");
    }

    #[test]
    fn the_primary_image_ends_at_its_own_end_marker() {
        // SOI, an APP1 holding FF D9, scan data with a stuffed FF, a restart marker, a table
        // between scans holding FF D9, the end, and a second image after it.
        let file = b"\xFF\xD8\xFF\xE1\x00\x04\xFF\xD9\x01\xFF\x00\x02\xFF\xD3\x03\xFF\xC4\x00\x04\xFF\xD9\x05\xFF\xD9\xFF\xD8SECOND\xFF\xD9";
        assert_eq!(primary_len(file), Some(24));
        assert_eq!(primary_len(&file[..24]), Some(24));
        assert_eq!(primary_len(&file[..20]), None, "cut short");
    }

    proptest::proptest! {
        /// Whatever follows a picture's signature, stripping never panics: an upload is
        /// stored, stripped or as it came.
        #[test]
        fn hostile_bytes_never_panic(kind in 0usize..3, body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let (signature, content_type): (&[u8], &str) = [
                (&b"\xFF\xD8\xFF\xE1"[..], "image/jpeg"),
                (&b"\x89PNG\r\n\x1a\n"[..], "image/png"),
                (&b"RIFF\x00\x01\x00\x00WEBPVP8X"[..], "image/webp"),
            ][kind];
            let mut data = signature.to_vec();
            data.extend_from_slice(&body);
            let _ = strip(Bytes::from(data), content_type);
        }
    }

    #[test]
    fn bytes_that_do_not_parse_are_left_alone() {
        assert!(strip(Bytes::from_static(b"not a jpeg"), "image/jpeg").is_none());
        assert!(strip(Bytes::from_static(b"%PDF-1.4"), "application/pdf").is_none());
    }
}
